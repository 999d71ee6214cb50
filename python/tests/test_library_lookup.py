"""How the client finds libtrainvisor_shm.so when no one names it: $TRAINVISOR_SHM_LIB, then the
build tree next to the package, then the system library path, else an error naming all three.

Each case runs a fresh Python process on a copy of the package in its own temporary folder, with
an environment that holds only what the case gives it, and asks that process which file it really
mapped (/proc/self/maps), not which name it was handed.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trainvisor"
LIB = os.environ.get("TRAINVISOR_SHM_LIB", "")

pytestmark = pytest.mark.skipif(not Path(LIB).is_file(),
                                reason="TRAINVISOR_SHM_LIB is not set (run through ctest)")

# Loads the library through the client, uses it, and says which file backs it.
CHILD = r"""
import sys
from trainvisor import shm
try:
    name = shm.block_name_for_job("job-1")
except shm.ShmError as e:
    print("error:", e)
    sys.exit(3)
mapped = {line.split(None, 5)[5].strip() for line in open("/proc/self/maps")
          if line.rstrip().endswith(".so") and "trainvisor_shm" in line}
print("block:", name)
print("mapped:", ";".join(sorted(mapped)))
"""


@pytest.fixture
def tree(tmp_path):
    """<tmp>/python/trainvisor: a copy of the package, with no build tree beside it yet."""
    shutil.copytree(PACKAGE, tmp_path / "python" / "trainvisor",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def copy_library(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(LIB, folder / "libtrainvisor_shm.so"))


def run_client(tree: Path, **env) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(tree / "python"),
             "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.run([sys.executable, "-c", CHILD], env=clean, capture_output=True,
                          text=True, timeout=60)


def loaded_from(result: subprocess.CompletedProcess) -> Path:
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["block"] == "trainvisor.job-1"
    return Path(lines["mapped"])


def test_the_environment_variable_comes_first(tree):
    chosen = copy_library(tree / "elsewhere")
    # A build tree whose library would not load: it must not even be tried.
    (tree / "build" / "lib").mkdir(parents=True)
    (tree / "build" / "lib" / "libtrainvisor_shm.so").write_text("not a library\n")
    assert loaded_from(run_client(tree, TRAINVISOR_SHM_LIB=str(chosen))) == chosen


def test_the_build_tree_next_to_the_package_without_the_variable(tree):
    built = copy_library(tree / "build" / "lib")
    system = copy_library(tree / "system")
    assert loaded_from(run_client(tree, LD_LIBRARY_PATH=str(system.parent))) == built


def test_the_system_library_path_last(tree):
    system = copy_library(tree / "system")
    assert loaded_from(run_client(tree, LD_LIBRARY_PATH=str(system.parent))) == system


def test_not_found_names_every_place_it_looked(tree):
    if subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True,
                      check=True).stdout.count("libtrainvisor_shm.so"):
        pytest.skip("libtrainvisor_shm.so is installed system-wide: it would be found")
    result = run_client(tree)
    assert result.returncode == 3, result.stdout + result.stderr
    built = tree / "build" / "lib" / "libtrainvisor_shm.so"
    assert result.stdout == (
        "error: libtrainvisor_shm.so not found: set TRAINVISOR_SHM_LIB or build the project "
        f"(looked in $TRAINVISOR_SHM_LIB, {built}, the system library path)\n")


def test_a_variable_naming_no_file_is_an_error_not_a_fallback(tree):
    copy_library(tree / "build" / "lib")
    missing = tree / "nowhere" / "libtrainvisor_shm.so"
    result = run_client(tree, TRAINVISOR_SHM_LIB=str(missing))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout == (
        f"error: cannot load {missing} (from $TRAINVISOR_SHM_LIB): {missing}: cannot open shared "
        "object file: No such file or directory\n")


def test_a_variable_naming_another_library_is_refused(tree):
    result = run_client(tree, TRAINVISOR_SHM_LIB="libc.so.6")
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout == ("error: libc.so.6 (from $TRAINVISOR_SHM_LIB) is not the Trainvisor "
                             "shm library: it has no tv_shm_abi_version\n")
