"""A case's id: the file it comes from, and whether it is that file's run in a tracing
instance. ftracetest runs a case marked `# flags: instance` twice, at the top level and
in a new instance, printing "(instance)" in the second result's description; the two
results are two cases, `kprobe/foo.tc` and `kprobe/foo.tc (instance)`."""
from __future__ import annotations

import dataclasses

INSTANCE_SUFFIX = " (instance)"
INSTANCE_WORD = "(instance)"     # as ftracetest puts it in a description


@dataclasses.dataclass(frozen=True)
class CaseId:
    test: str                    # dynevent/add_remove_kprobe.tc, kprobe_multi/attach_by_symbol
    instance: bool = False

    def __str__(self) -> str:
        return self.test + (INSTANCE_SUFFIX if self.instance else "")

    @classmethod
    def parse(cls, text: str) -> "CaseId":
        if text.endswith(INSTANCE_SUFFIX):
            return cls(text.removesuffix(INSTANCE_SUFFIX), True)
        return cls(text)

    @classmethod
    def from_result(cls, test: str, description: str) -> tuple["CaseId", str]:
        """The id of a result of `test` and its description without the instance word."""
        instance = INSTANCE_WORD in description
        return cls(test, instance), description.replace(INSTANCE_WORD, "").strip()


def test_of(case_id: str) -> str:
    """The file part of a case id as results.json holds it."""
    return CaseId.parse(case_id).test
