"""The demo's targets, checked outside the package (benchmarks/demo_targets.py) from a demo run's results."""
from benchmarks.demo_targets import check_targets


def rows(adapter_x: float, ssf: float, full: float, scratch: float) -> list[dict]:
    return [{"method": "full (random init)", "init": "scratch", "test_acc": scratch},
            {"method": "full", "init": "pretrained", "test_acc": full},
            {"method": "ssf", "init": "pretrained", "test_acc": ssf},
            {"method": "adapter_x", "init": "pretrained", "test_acc": adapter_x}]


def test_targets_are_met_or_missed_with_their_numbers():
    met = {t["target"]: t["met"] for t in check_targets(rows(76.0, 77.0, 77.3, 56.0), merged=77.0)}
    assert all(met.values())
    missed = {t["target"]: t for t in check_targets(rows(66.0, 69.0, 77.3, 56.0), merged=68.0)}
    assert not missed["adapter_x within 2 points of full fine-tuning from the same backbone"]["met"]
    assert missed["adapter_x above full fine-tuning from a random initialisation"]["met"]
    assert missed["merged SSF gives the unmerged accuracy"]["numbers"] == "68.0 vs 69.0"
