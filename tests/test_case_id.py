from orchestrator.suites import case_id as case_ids
from orchestrator.suites.case_id import CaseId


def test_instance_result_is_its_own_case_and_parses_back():
    case_id, desc = CaseId.from_result("kprobe/kprobe_args.tc", "(instance)  Kprobe dynamic event - arguments")
    assert str(case_id) == "kprobe/kprobe_args.tc (instance)"
    assert desc == "Kprobe dynamic event - arguments"
    assert CaseId.parse(str(case_id)) == case_id
    assert case_ids.test_of(str(case_id)) == "kprobe/kprobe_args.tc"


def test_plain_result_keeps_the_file_as_its_id():
    case_id, desc = CaseId.from_result("dynevent/add_remove_kprobe.tc", "Generic dynamic event - add/remove kprobe events")
    assert str(case_id) == "dynevent/add_remove_kprobe.tc" and not case_id.instance
    assert CaseId.parse("kprobe_multi/attach_by_symbol") == CaseId("kprobe_multi/attach_by_symbol")
