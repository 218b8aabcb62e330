from pathlib import Path

from bench.cpu_cost import labelled, slug


def test_a_tree_given_by_absolute_path_gets_a_work_directory_inside_the_work_directory() -> None:
    work = Path("/tmp/cpu-cost-x")
    directory = work / slug("/work/wt/branch")
    assert directory.parent == work
    assert directory.name == "work-wt-branch"


def test_labels_of_refs_and_the_default_tree_stay_readable() -> None:
    assert slug("e81c902") == "e81c902"
    assert slug("this tree") == "this-tree"
    assert slug("/") == "tree"


def test_a_tree_given_twice_is_measured_twice_under_two_labels() -> None:
    tree = Path("/tmp/tree")
    assert list(labelled([("main", tree), ("main", tree), ("main", tree)])) == ["main", "main #2", "main #3"]
