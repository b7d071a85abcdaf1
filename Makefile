# The verbs (docs/usage.md has each variable with its flag):
#   make deps                      host packages for ARCH (apt-get), the venv
#   make test                      x86_64, Debian's linux-source-7.2 (KERNEL=6.12: the LTS tree), the default suites
#   make test KERNEL=~/linux SUITES=dynevent,kprobe
#   make test ARCH=arm64 SERIES=v4.mbx COMPARE=1 BISECT=1   base vs base+series, first bad patch
#   make test ARCH=x86_64,arm64 SERIES=v4.mbx EACH_PATCH=1 REPLY=mail.txt   the mail for the thread
#   make test TRANSPORT=ssh        commands over SSH to the guest (console still logged)
#   make test QEMU=backports       every arch on QEMU 10.0 (bookworm-backports), beside the host's 7.2
#   make test KCONFIG=debug        a debug kernel (lockdep, sleep-in-atomic, KASAN), its own build dir
#   make test CASES='kprobe/kprobe_args_user.tc' REPEAT=10   one case ten times: its failure rate
#   make test RERUN=results/latest the cases of that run that did not pass, on its kernel
#   make test SHELL_ON_FAILURE=1   the first failing case's guest handed to this terminal
#   make pytest ARCH=arm64 N=2     each case a pytest item, two guests (pytest-xdist)
#   make shell ARCH=arm64 GDB=1    the last arm64 run's kernel and image, a shell on its console
#   make matrix BASELINE=dir       every cell of matrix.yaml, each compared with its last night
#   make workflow                  the nightly CI workflow from matrix.yaml
#   make report RUNS="a b" OUT=dir HISTORY=dir   pages made again from results.json
#   make bench ONLY=build REPEAT=3 how long a developer waits, measured
#   make check                     the project's own tests (unit + real x86_64 boots)
#   make check-debug               the debug kernel's own tests (a build CI's budget leaves out)
#   make unit                      the unit tests alone
#   make clean                     the venv (the cache is kept)
# Variables: ARCH, KERNEL, SUITES, KCONFIG, CASES, TIMEOUT, ACCEL, LLVM, CROSS_COMPILE, QEMU,
# TRANSPORT, JOBS (guests per arch), SERIES, BASE, COMPARE, EACH_PATCH (1|build|test), BISECT,
# RETRIES, REPLY, RERUN, REPEAT, UNTIL_FAIL, SHELL_ON_FAILURE, N (pytest workers), GDB,
# BASELINE, RUNS, OUT, HISTORY, ONLY. Yes/no ones take 1 yes true y on, or 0 no false n off.

# These come from make's command line only: a kernel developer's exported ARCH,
# CROSS_COMPILE, LLVM, O... are for their own builds, and an exported N, JOBS or BASE
# means something else entirely. (The kernel's own make gets none of them either:
# orchestrator/hosttools.py's build_environment.)
USER_VARIABLES := ARCH KERNEL SUITES KCONFIG TIMEOUT ACCEL LLVM CROSS_COMPILE SERIES BASE COMPARE \
	EACH_PATCH BISECT RETRIES TRANSPORT N QEMU JOBS RERUN REPLY SHELL_ON_FAILURE GDB RUNS OUT \
	HISTORY BASELINE ONLY REPEAT CASES UNTIL_FAIL
$(foreach v,$(USER_VARIABLES),$(if $(filter environment%,$(origin $(v))),$(eval undefine $(v))))
# What a yes/no variable takes as yes (COMPARE=1, COMPARE=yes, COMPARE=true...), and as
# no; anything else is refused rather than read as no.
YES := 1 yes true y on
NO  := 0 no false n off
# $(1): the variable; $(2): the other values it takes.
check_yes_no = $(if $(filter-out $(YES) $(NO) $(2),$($(1))),$(error $(1)=$($(1)) is neither yes nor no: \
	give $(1)=1 (or yes, true, on)$(if $(2), $(foreach x,$(2),or $(1)=$(x))), or leave it out))
$(foreach v,COMPARE BISECT SHELL_ON_FAILURE UNTIL_FAIL GDB,$(call check_yes_no,$(v)))
$(call check_yes_no,EACH_PATCH,build test)
ARCH    ?= x86_64
VENV    ?= .venv
PY      := $(VENV)/bin/python
SUDO    := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# Debian packages every arch needs: kernel build tools, pahole (dwarves), ccache and
# the default kernel tree. Each arch's own (cross compiler, QEMU, busybox) come from
# the arch table through `orchestrator deps`.
APT_PACKAGES := gcc make flex bison bc libelf-dev libssl-dev dwarves cpio ccache \
	linux-source-6.12 git xz-utils kmod python3 python3-venv
# What only `make check` needs beyond them: a test runs pytest-xdist's `--tx ssh=` against
# a dropbear on the loopback of a network namespace (tests/netns_sshd.py). dropbear-bin is
# the server's binaries alone: no service is installed or started on the host. qemu-user
# runs the foreign guests' busybox and programs on the host (no binfmt is registered).
CHECK_PACKAGES := dropbear-bin openssh-client iproute2 util-linux qemu-user

.PHONY: deps test pytest shell matrix workflow report bench check check-debug unit clean help
help:
	@sed -n '1,/^$$/p' Makefile

deps: $(VENV)/.installed
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		log="$${ORCHESTRATOR_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/orchestrator}/logs/deps.log"; \
		mkdir -p "$$(dirname "$$log")"; \
		echo "deps: apt-get install" $$missing "(apt's output: $$log)"; \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends $$missing; } >>"$$log" 2>&1 || \
		{ tail -n 5 "$$log"; echo "deps: apt-get failed; its whole output is in $$log"; exit 1; }; \
	fi
	@$(PY) -m orchestrator deps --arch "$(ARCH)" $(if $(TRANSPORT),--transport "$(TRANSPORT)") \
		$(if $(QEMU),--qemu "$(QEMU)")

$(VENV)/.installed: pyproject.toml
	@command -v python3 >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 python3-venv; }
	python3 -m venv $(VENV) || { $(SUDO) apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

test: deps
	$(PY) -m orchestrator test --arch "$(ARCH)" \
		$(if $(KERNEL),--kernel "$(KERNEL)") $(if $(SUITES),--suite "$(SUITES)") \
		$(if $(KCONFIG),--kconfig "$(KCONFIG)") $(if $(TIMEOUT),--case-timeout "$(TIMEOUT)") \
		$(if $(ACCEL),--accel "$(ACCEL)") $(if $(LLVM),--llvm "$(LLVM)") \
		$(if $(CROSS_COMPILE),--cross-compile "$(CROSS_COMPILE)") \
		$(if $(SERIES),--series "$(SERIES)") $(if $(BASE),--base "$(BASE)") \
		$(if $(filter $(YES),$(COMPARE)),--compare-base) $(if $(filter $(YES) build,$(EACH_PATCH)),--each-patch) \
		$(if $(filter test,$(EACH_PATCH)),--each-patch=test) \
		$(if $(filter $(YES),$(BISECT)),--bisect) $(if $(TRANSPORT),--transport "$(TRANSPORT)") \
		$(if $(RETRIES),--retries "$(RETRIES)") $(if $(RERUN),--rerun "$(RERUN)") \
		$(if $(REPLY),--reply "$(REPLY)") $(if $(QEMU),--qemu "$(QEMU)") \
		$(if $(filter $(YES),$(SHELL_ON_FAILURE)),--shell-on-failure) $(if $(JOBS),--guests "$(JOBS)") \
		$(if $(CASES),--case "$(CASES)") $(if $(REPEAT),--repeat "$(REPEAT)") \
		$(if $(filter $(YES),$(UNTIL_FAIL)),--until-fail)

# The suites' cases as pytest items (the plugin in orchestrator/pytest_plugin/), N
# workers each with its own guest per arch; JUnit XML in results/pytest-junit.xml.
pytest: deps
	$(PY) -m pytest -p no:cacheprovider -n "$(or $(N),2)" --arch "$(ARCH)" \
		$(if $(KERNEL),--kernel "$(KERNEL)") $(if $(SUITES),--suite "$(SUITES)") \
		$(if $(KCONFIG),--kconfig "$(KCONFIG)") $(if $(SERIES),--series "$(SERIES)") \
		$(if $(TRANSPORT),--transport "$(TRANSPORT)") $(if $(QEMU),--qemu "$(QEMU)") \
		$(if $(CASES),--case "$(CASES)") $(if $(BASE),--series-base "$(BASE)") \
		$(if $(TIMEOUT),--case-timeout "$(TIMEOUT)") $(if $(ACCEL),--accel "$(ACCEL)") \
		$(if $(LLVM),--llvm "$(LLVM)") $(if $(CROSS_COMPILE),--cross-compile "$(CROSS_COMPILE)") \
		$(if $(JOBS),--vms-per-arch "$(JOBS)") --junitxml results/pytest-junit.xml

# The guest of the last run of ARCH, its console on this terminal (Ctrl-A x ends it).
shell: $(VENV)/.installed
	$(PY) -m orchestrator shell --arch "$(ARCH)" $(if $(filter $(YES),$(GDB)),--gdb)

# The cells of matrix.yaml (arches x kernels), one after another, one table at the end.
matrix:
	$(MAKE) deps ARCH=all
	$(PY) -m orchestrator matrix --spec matrix.yaml $(if $(BASELINE),--baseline "$(BASELINE)") \
		$(if $(QEMU),--qemu "$(QEMU)") $(if $(JOBS),--guests "$(JOBS)")

# The nightly CI workflow, generated from matrix.yaml (a test checks they agree).
workflow: $(VENV)/.installed
	$(PY) -m orchestrator workflow --spec matrix.yaml --out .github/workflows/nightly.yml

# How long a developer waits, measured (never fails): results/bench-<date>/bench-<arch>.json.
bench: deps
	@$(PY) -m orchestrator deps --arch "$(ARCH)" --qemu backports   # the QEMU 10 vs 7.2 rows
	$(PY) bench/bench.py --arch "$(ARCH)" --repeat "$(or $(REPEAT),3)" $(if $(ONLY),--only "$(ONLY)")

# Report pages made again from results.json; several runs merge into one (OUT= names its dir).
report: $(VENV)/.installed
	$(PY) -m orchestrator report $(if $(OUT),--out "$(OUT)") $(if $(HISTORY),--history "$(HISTORY)") $(RUNS)

# The tests that boot no kernel on both cores, then the end-to-end ones one at a time
# (one kernel build at a time; their slowest listed). pytest exits 5 when it collected
# no tests: that is not a failure of the suite, every other non-zero status is.
check: $(VENV)/.installed
	@$(MAKE) --no-print-directory deps TRANSPORT=ssh APT_PACKAGES="$(APT_PACKAGES) $(CHECK_PACKAGES)"
	@$(PY) -m pytest -v -rs -n 2 -m "not e2e" tests; unit=$$?; \
	$(PY) -m pytest -v -rs --durations=20 -m "e2e and not debug_kernel" tests; e2e=$$?; \
	for rc in $$unit $$e2e; do \
		if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi; \
	done; \
	if [ $$unit -eq 5 ] && [ $$e2e -eq 5 ]; then echo "check: pytest collected no tests"; fi

# The debug kernel's tests: a build of its own, more than CI's budget holds beside the rest.
check-debug: $(VENV)/.installed
	@$(MAKE) --no-print-directory deps
	@$(PY) -m pytest -v -rs -m debug_kernel tests

unit: deps
	@$(PY) -m pytest -v -m "not e2e" tests; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
	@echo "Kernel trees, build dirs and images stay in the cache ($${ORCHESTRATOR_CACHE:-$${XDG_CACHE_HOME:-~/.cache}/orchestrator}); remove it by hand."
