"""The compiled-build guard of tests/conftest.py: it names every compiled module, and
refuses a session that would test the .py files instead."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import compiled_modules, not_imported_from


def _fake_build(root: Path) -> Path:
    for rel in ("huntgroup/queue/core.cpython-311-x86_64-linux-gnu.so",
                "huntgroup/queue/__init__.cpython-311-x86_64-linux-gnu.so",
                "huntgroup/distribution/walks.cpython-311-x86_64-linux-gnu.so",
                "huntgroup/queue/core.py"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    return root


def test_the_compiled_modules_are_named_from_the_build(tmp_path: Path) -> None:
    assert compiled_modules(_fake_build(tmp_path)) == [
        "huntgroup.distribution.walks",
        "huntgroup.queue",
        "huntgroup.queue.core",
    ]


def test_modules_imported_from_the_checkout_are_refused(tmp_path: Path) -> None:
    # this process imports huntgroup from the checkout (.py files): all three are wrong
    wrong = not_imported_from(_fake_build(tmp_path))
    assert [w.split(" ")[0] for w in wrong] == [
        "huntgroup.distribution.walks",
        "huntgroup.queue",
        "huntgroup.queue.core",
    ]
    assert all(".py)" in w for w in wrong)


def test_native_run_refuses_a_missing_build(tmp_path: Path) -> None:
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [str(root / "scripts/native_run.sh"), "--help"],
        env=dict(os.environ, HUNTGROUP_NATIVE_OUT=str(tmp_path / "none")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "no build in" in done.stderr and "scripts/build_native.sh --out" in done.stderr
