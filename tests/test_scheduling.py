"""How ``make test`` splits the suite over xdist workers (tests/conftest.py): the tests that
share a costly fixture must land in one worker, or it is built twice (or, for a
module-scoped Workbench, tests that depend on its order fail)."""

from __future__ import annotations

import pathlib

import pytest

HERE = pathlib.Path(__file__).with_name("conftest.py")


@pytest.fixture(scope="module")
def conftest(pytestconfig):
    """tests/conftest.py as pytest loaded it (``import conftest`` could find
    tests/browser/conftest.py instead, and importing it again would redo its set-up)."""
    for plugin in pytestconfig.pluginmanager.get_plugins():
        if pathlib.Path(getattr(plugin, "__file__", "") or "") == HERE:
            return plugin
    pytest.fail(f"{HERE} is not loaded")


def test_a_module_is_one_group(conftest):
    group_of = conftest.group_of
    assert group_of("tests/test_workbench.py::test_prune") == "test_workbench"
    assert group_of("tests/test_workbench.py::test_modes[int8]") == "test_workbench"
    assert group_of("tests/test_code.py::test_the_code_makes_the_variant[qat-pcqat]") == (
        "test_code")


def test_every_browser_test_shares_one_group(conftest):
    group_of = conftest.group_of
    assert {group_of("tests/browser/test_voila.py::test_voila_serves_the_studio"),
            group_of("tests/browser/test_jupyterlab.py::test_inspector[chromium]")} == {
        "browser"}


def test_a_zoo_family_is_a_group_of_its_own(conftest):
    group_of = conftest.group_of
    groups = {group_of(f"tests/zoo/test_zoo.py::{test}") for test in (
        "test_inspection_reads_every_weight[mobilenet]",
        "test_post_training_modes[mobilenet-int8]",
        "test_qat_or_its_specific_error[mobilenet]")}
    assert groups == {"zoo-mobilenet"}
    assert group_of("tests/zoo/test_zoo.py::test_post_training_modes[conv1d_lstm-dynamic]") == (
        "zoo-conv1d_lstm")
    assert group_of("tests/zoo/test_zoo.py::test_post_training_modes[lstm-int8]") != (
        group_of("tests/zoo/test_zoo.py::test_post_training_modes[mobilenet-int8]"))


class _Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


def test_the_longest_groups_are_handed_out_first_in_their_order(conftest):
    group_of, first = conftest.group_of, conftest._FIRST
    ids = ["tests/test_demo.py::test_a", "tests/test_code.py::test_b",
           "tests/zoo/test_zoo.py::test_c[transfer_keras3]", "tests/test_notebooks.py::test_d",
           "tests/browser/test_voila.py::test_e", "tests/test_bridge.py::test_f"]
    items = [_Item(i) for i in ids]
    conftest.pytest_collection_modifyitems(items)
    order = [group_of(item.nodeid) for item in items]
    assert order[:len(first)] == list(first)
    assert order[len(first):] == ["test_demo", "test_bridge"]  # the rest keep their order
