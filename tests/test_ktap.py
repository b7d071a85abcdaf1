"""KTAP parsing on ftracetest's real output (captured from real guest runs)."""
from orchestrator.suites import caselog, ktap


def test_plain_pass():
    doc = ktap.parse(["TAP version 13", "1..1", "ok 1 Generic dynamic event - add/remove kprobe events",
                      "", "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0"])
    assert doc.plan == 1
    assert [(r.number, r.description, r.status) for r in doc.results] == [
        (1, "Generic dynamic event - add/remove kprobe events", "PASS")]


def test_directives_map_to_statuses():
    doc = ktap.parse(["ok 1 a # SKIP", "not ok 2 b # UNRESOLVED", "ok 3 c # XFAIL",
                      "not ok 4 d # error", "not ok 5 e", "ok 6 f # SKIP no fprobe"])
    assert [r.status for r in doc.results] == ["SKIP", "UNRESOLVED", "XFAIL", "ERROR", "FAIL", "SKIP"]
    assert doc.results[5].reason == "no fprobe"


def test_ftracetest_verdict_refines_skip():
    lines = ["ok 1 Kprobe event with non-unique symbol # SKIP",
             "# verdict: [1] Kprobe event with non-unique symbol\t[UNSUPPORTED]"]
    assert ktap.ftracetest_verdicts(lines) == {1: "UNSUPPORTED"}
    lines = ["# verdict: [2] (instance)  Something\t[UNTESTED]", "# verdict: [3] x\t[UNDEFINED]"]
    assert ktap.ftracetest_verdicts(lines) == {2: "UNTESTED", 3: "ERROR"}


def test_indented_subtests_are_not_top_level_results():
    doc = ktap.parse(["KTAP version 1", "1..1", "    KTAP version 1", "    1..2",
                      "    ok 1 sub a", "    not ok 2 sub b", "not ok 1 parent"])
    assert [(r.description, r.status) for r in doc.results] == [("parent", "FAIL")]
    assert "    not ok 2 sub b" in doc.results[0].diagnostics


def test_case_log_excerpt_and_reason():
    log = "\n".join(["execute: /kto/ftrace/test.d/kprobe/kprobe_module.tc", "+ initialize_ftrace"]
                    + ["+ echo" for _ in range(2000)]
                    + ["+ . /kto/ftrace/test.d/kprobe/kprobe_module.tc", "+ modprobe trace-printk",
                       "modprobe: can't change directory to '/lib/modules': No such file or directory",
                       "+ echo 'No trace-printk sample module - please make CONFIG_SAMPLE_TRACE_PRINTK=m'",
                       "No trace-printk sample module - please make CONFIG_SAMPLE_TRACE_PRINTK=m",
                       "+ exit_unresolved", "+ kill -s 38 6003", "+ exit 0"])
    ex = caselog.excerpt(log)
    assert ex.splitlines()[0] == "+ . /kto/ftrace/test.d/kprobe/kprobe_module.tc"
    assert caselog.reason(log, "UNRESOLVED") == \
        "No trace-printk sample module - please make CONFIG_SAMPLE_TRACE_PRINTK=m"


def test_reason_is_the_check_that_failed_not_an_earlier_commands_complaint():
    # kprobe/kprobe_module.tc on 7.2: `rmmod trace_printk ||:` complains, the case goes on,
    # and `test -d` (no output) is the check that failed.
    log = "\n".join(["+ . /kto/ftrace/test.d/kprobe/kprobe_module.tc", "+ rmmod trace_printk",
                     "rmmod: can't unload module 'trace_printk': No such file or directory", "+ :",
                     "+ echo p:trace_printk:trace_printk_irq_work", "+ test -d events/kprobes/p_trace_printk_irq_work_0"])
    assert caselog.reason(log, "FAIL") == ("failed at: echo p:trace_printk:trace_printk_irq_work ; "
                                           "test -d events/kprobes/p_trace_printk_irq_work_0")


def test_reason_names_the_commands_a_silent_case_gave_up_after():
    log = "\n".join(["+ . /kto/ftrace/test.d/kprobe/kprobe_non_uniq_symbol.tc", "+ SYMBOL=name_show",
                     "+ grep -c -E '[[:alnum:]]+ t name_show$' /proc/kallsyms", "+ '[' 1 -le 1 ]",
                     "+ exit_unsupported", "+ kill -s 40 6307", "+ exit 0"])
    assert caselog.reason(log, "UNSUPPORTED") == (
        "gave up after: grep -c -E '[[:alnum:]]+ t name_show$' /proc/kallsyms ; '[' 1 -le 1 ]")
