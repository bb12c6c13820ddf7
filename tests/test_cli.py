"""One command-line vocabulary: every tool takes the same flag for the same idea (old spellings as
hidden aliases), ends user errors through one path, and ``fusion-perception COMMAND`` runs the
same function as ``tools/<command>.py``."""

from __future__ import annotations

import argparse
import configparser
import logging
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pair_folders import random_pairs

from fusion_perception import cli, cli_plugins, commands
from fusion_perception.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

# idea -> (the flag, its dest, the old spellings it still accepts, hidden from --help)
VOCABULARY = {
    "output folder": ("--out", "out", ("--work-dir",)),
    "fusion method": ("--fusion", "fusion", ("--method",)),
    "fusion methods compared": ("--methods", "methods", ()),
    "add-on method modules": ("--import", "imports", ()),
    "replace other settings' output": ("--overwrite", "overwrite", ()),
    "redo a finished run": ("--force", "force", ()),
    "no progress bars": ("--no-progress", "no_progress", ("--quiet",)),
    "batch size": ("--batch-size", "batch_size", ("--batch",)),
    "device": ("--device", "device", ()),
    "dataset root": ("--data", "data", ()),
    "dataset layout": ("--layout", "layout", ()),
    "bad items": ("--skip-bad", "skip_bad", ()),
    "loader workers": ("--workers", "workers", ()),
    "torch threads": ("--threads", "threads", ()),
    "one seed": ("--seed", "seed", ()),
    "several seeds": ("--seeds", "seeds", ()),
    "epochs": ("--epochs", "epochs", ()),
    "config": ("--config", "config", ()),
    "fused dataset": ("--fused-dir", "fused_dir", ()),
    "library output": ("--verbose", "verbose", ()),
}
OLD = [old for _, _, aliases in VOCABULARY.values() for old in aliases]
# what each tool needs besides the flag under test, to parse at all
REQUIRED = {"describe": ["--data", "d"], "eval-fusion": ["--fused", "f", "--out", "o"], "eval-det": ["--run", "r"],
            "eval-seg": ["--run", "r"], "compare": ["--methods", "ir,vi"], "make-synthetic": ["--out", "o"],
            "compare-runs": ["a", "b"]}
SCRIPTS = {name: REPO / "tools" / f"{c.module}.py" for name, c in commands.COMMANDS.items()}


@pytest.fixture(autouse=True)
def _leave_no_trace():
    """A command's logging.basicConfig handler (it writes to this test's captured stderr) and the
    environment it sets for its process (OMP_WAIT_POLICY) are undone after each test."""
    handlers, environ = list(logging.getLogger().handlers), dict(os.environ)
    yield
    for h in [h for h in logging.getLogger().handlers if h not in handlers]:
        logging.getLogger().removeHandler(h)
    os.environ.clear()
    os.environ.update(environ)


def parsers() -> dict[str, argparse.ArgumentParser]:
    return {name: commands.load_command(name).build_parser() for name in commands.COMMANDS}


def test_every_command_has_its_script():
    assert sorted(p.name for p in (REPO / "tools").glob("*.py")) == sorted(p.name for p in SCRIPTS.values())


def test_every_tool_uses_one_name_per_idea():
    """A shared idea has one flag everywhere: the same dest and the same kind of value; old
    spellings are parsed as that flag and never shown."""
    seen: dict[str, set] = {}
    for name, p in parsers().items():
        actions = p._option_string_actions
        shown = p.format_help()
        for flag, dest, aliases in VOCABULARY.values():
            if flag not in actions:
                continue
            action = actions[flag]
            assert action.dest == dest, (name, flag)
            for old in aliases:
                assert actions.get(old) is action, f"{name}: {old} is not an alias of {flag}"
            seen.setdefault(flag, set()).add((type(action).__name__, action.nargs, action.const))
        for old in OLD:
            assert not re.search(rf"{old}(?![\w-])", shown), f"{name} --help shows {old}"
        assert "--work-dir" not in {o for a in p._actions for o in a.option_strings}
    different = {flag: kinds for flag, kinds in seen.items() if len(kinds) > 1}
    assert different == {}, different
    assert len(seen) == len(VOCABULARY)  # every idea is used by some tool


def test_every_method_taking_tool_imports_add_ons_and_says_what_device_means():
    for name, p in parsers().items():
        actions = p._option_string_actions
        if {"--fusion", "--methods", "--pseudo-gt"} & set(actions):
            assert "--import" in actions, name
        if "--device" in actions:
            assert actions["--device"].help.startswith(cli.DEVICE_HELP), name


def test_every_tool_with_progress_bars_can_hide_them():
    """The long jobs (fusing, training, scoring, comparing) all take --no-progress; what runs in a
    few seconds (describe, eval-det, make-synthetic) needs none."""
    long_jobs = {"fuse", "train-det", "train-seg", "train-sensing", "train-emma", "eval-fusion", "compare", "demo"}
    missing = sorted(name for name, p in parsers().items()
                     if name in long_jobs and "--no-progress" not in p._option_string_actions)
    assert missing == []


@pytest.mark.parametrize("name", ["fuse", "train-det", "train-seg", "eval-fusion", "eval-seg", "eval-det",
                                  "compare", "demo"])
@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "0", "0,1,2,3"])
def test_device_takes_the_same_values_everywhere(name, device):
    p = commands.load_command(name).build_parser()
    assert p.parse_args([*REQUIRED.get(name, []), "--device", device]).device == device


@pytest.mark.parametrize("name, old, new", [
    ("train-det", ["--method", "mean", "--batch", "4", "--work-dir", "w"], ["--fusion", "mean", "--batch-size", "4",
                                                                           "--out", "w"]),
    ("train-seg", ["--method", "gff", "--batch", "2", "--quiet"], ["--fusion", "gff", "--batch-size", "2",
                                                                   "--no-progress"]),
    ("fuse", ["--method", "max", "--quiet", "--batch", "3", "--work-dir", "w"],
     ["--fusion", "max", "--no-progress", "--batch-size", "3", "--out", "w"]),
    ("eval-fusion", ["--fused", "f", "--work-dir", "o", "--quiet"], ["--fused", "f", "--out", "o", "--no-progress"]),
    ("train-sensing", ["--work-dir", "w"], ["--out", "w"]),
    ("train-emma", ["--work-dir", "w"], ["--out", "w"]),
    ("make-synthetic", ["--work-dir", "o"], ["--out", "o"]),
])
def test_old_spellings_mean_the_same(name, old, new):
    p = commands.load_command(name).build_parser()
    assert p.parse_args(old) == p.parse_args(new)
    assert "--method" not in p.format_usage() and "--work-dir" not in p.format_usage()


def test_the_known_commands_parse_as_before():
    det = commands.load_command("train-det").build_parser().parse_args(["--fusion", "emma"])
    assert det.fusion == "emma" and det.out is None and det.batch_size is None and det.imports == []
    seg = commands.load_command("train-seg").build_parser().parse_args([])
    assert seg.fusion == "emma" and seg.device is None and not seg.no_progress
    fuse = commands.load_command("fuse").build_parser().parse_args([])
    assert (fuse.fusion, fuse.device, fuse.batch_size, fuse.workers) == ("emma", None, 4, 2)  # None: the one device rule
    compare = commands.load_command("compare").build_parser().parse_args(
        ["--methods", "ir,vi", "--seeds", "0,1,2", "--weights", "emma=EMMA.pth", "--weights", "gff=x"])
    assert compare.seeds == [0, 1, 2] and compare.weights == {"emma": "EMMA.pth", "gff": "x"}


def test_usage_errors_keep_their_words(capsys):
    p = commands.load_command("compare").build_parser()
    for args, words in ((["--seeds", "0,a"], "--seeds expects comma-separated integers such as 0,1,2, got '0,a'"),
                        (["--weights", "EMMA.pth"], "--weights expects METHOD=PATH, got 'EMMA.pth'")):
        with pytest.raises(SystemExit) as e:
            p.parse_args(["--methods", "ir", *args])
        assert e.value.code == 2 and words in capsys.readouterr().err


# ----------------------------------------------------------------------------- one path, two entry points


def _record_run(monkeypatch, name: str) -> list[argparse.Namespace]:
    calls: list[argparse.Namespace] = []
    module = commands.load_command(name)
    monkeypatch.setattr(module, "run", lambda args: calls.append(args) or 0)
    return calls


@pytest.mark.parametrize("name", list(commands.COMMANDS))
def test_the_script_and_the_subcommand_run_the_same_function(name, monkeypatch):
    calls = _record_run(monkeypatch, name)
    argv = REQUIRED.get(name, [])
    main = runpy.run_path(str(SCRIPTS[name]))["main"]
    assert main(argv) == 0
    assert commands.main([name, *argv]) == 0
    assert commands.main([commands.COMMANDS[name].module, *argv]) == 0  # the script's name works too
    assert len(calls) == 3 and calls[0] == calls[1] == calls[2]


@pytest.mark.parametrize("name", list(commands.COMMANDS))
def test_every_tool_ends_a_user_error_in_one_line(name, monkeypatch, capsys):
    module = commands.load_command(name)

    def fail(args):
        raise ConfigError("--thing: a problem the user can fix")

    monkeypatch.setattr(module, "run", fail)
    argv = REQUIRED.get(name, [])
    for main in (runpy.run_path(str(SCRIPTS[name]))["main"], lambda a: commands.main([name, *a])):
        capsys.readouterr()
        assert main(argv) == 2
        assert capsys.readouterr().err == "error: --thing: a problem the user can fix\n"


def test_no_tool_prints_its_own_errors():
    for path in [*(REPO / "tools").glob("*.py"), *(REPO / "fusion_perception" / "commands").glob("*.py")]:
        text = path.read_text()
        assert "user_error_message" not in text and 'print(f"error:' not in text and "return 2" not in text, path


def test_dispatcher_help_and_unknown_commands(capsys):
    with pytest.raises(SystemExit) as e:
        commands.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and all(name in out for name in commands.COMMANDS)
    with pytest.raises(SystemExit) as e:
        commands.main(["fuse", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: fusion-perception fuse") and "--fusion METHOD" in out
    for argv in ([], ["nosuch"]):
        with pytest.raises(SystemExit) as e:
            commands.main(argv)
        assert e.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_the_console_script_is_declared():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    scripts = dict(line.split(" = ") for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines())
    module, function = scripts["fusion-perception"].split(":")
    assert getattr(__import__(module, fromlist=[function]), function) is commands.main


def test_python_m_fusion_perception():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "fusion_perception", "--help"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0 and "train-det" in r.stdout and "fusion-perception" in r.stdout, r.stderr


# ----------------------------------------------------------------------------- --import and --device


def test_import_registers_an_add_on_method_in_the_fuse_command(tmp_path, slow_mean_plugin, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(slow_mean_plugin))
    assert cli_plugins.IMPORT_ENV not in os.environ
    listed = []
    fuse = commands.load_command("fuse")
    real_run = fuse.run

    def run_and_look(args):
        rc = real_run(args)
        listed.append(os.environ.get(cli_plugins.IMPORT_ENV))  # what a worker spawned now would import
        return rc

    monkeypatch.setattr(fuse, "run", run_and_look)
    src = random_pairs(tmp_path / "src", n=2)
    rc = commands.main(["fuse", "--data", str(src), "--fusion", "slow_mean", "--import", "slow_fuser_plugin",
                        "--param", "delay=0", "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0 and "slow_mean: 2 fused images" in capsys.readouterr().out
    assert listed == ["slow_fuser_plugin"]  # the workers a command spawns import it too
    assert cli_plugins.IMPORT_ENV not in os.environ  # and the next command starts without it


def test_a_missing_import_is_one_line(capsys):
    assert commands.main(["train-det", "--fusion", "mean", "--import", "no_such_plugin_module"]) == 2
    assert capsys.readouterr().err.strip() == "error: --import no_such_plugin_module: No module named " \
                                              "'no_such_plugin_module'"


def test_a_tool_with_import_imports_before_it_parses(tmp_path, monkeypatch, capsys):
    """The ``--import`` modules load before the parser is built (its lists of registered names
    then hold theirs), in the tools that take ``--import`` only: elsewhere it stays a usage error."""
    (tmp_path / "probe_preimport.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(SystemExit) as e:
            commands.main(["describe", "--data", "d", "--import", "probe_preimport"])
        assert e.value.code == 2 and "unrecognized arguments: --import probe_preimport" in capsys.readouterr().err
        assert "probe_preimport" not in sys.modules
        calls = _record_run(monkeypatch, "fuse")  # its run (which would import them too) does nothing here
        assert commands.main(["fuse", "--import", "probe_preimport", "--fusion", "mean"]) == 0
        assert calls[0].imports == ["probe_preimport"] and sys.modules["probe_preimport"].LOADED
    finally:
        sys.modules.pop("probe_preimport", None)


def test_comparison_workers_import_the_add_ons(tmp_path, monkeypatch):
    from fusion_perception.comparison.jobs import init_worker

    (tmp_path / "probe_plugin_for_workers.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(cli_plugins.IMPORT_ENV, "probe_plugin_for_workers")
    init_worker(torch.get_num_threads(), logging.INFO)
    assert sys.modules["probe_plugin_for_workers"].LOADED


def test_one_device_rule_the_gpu_when_there_is_one(monkeypatch):
    """Every tool's --device: the GPU when the machine has one, else the CPU; GPU ids become one
    torch device per process. The rule is given the machine (its GPU count), torch is not patched."""
    from fusion_perception.devices import resolve_device, torch_device

    assert resolve_device(None, gpus=0) == "cpu" and resolve_device(None, gpus=2) == "cuda"
    assert resolve_device("", gpus=1) == "cuda" and resolve_device("CPU", gpus=1) == "cpu"
    assert resolve_device("0,1", gpus=2) == "0,1"  # ultralytics' DDP takes the ids as they are
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert torch_device(None, gpus=0) == "cpu" and torch_device(None, gpus=4) == "cuda"
    assert [torch_device(d, gpus=4) for d in ("cpu", "cuda", "cuda:1", "2", "2,3")] == \
        ["cpu", "cuda", "cuda:1", "cuda:2", "cuda:2"]
    monkeypatch.setenv("LOCAL_RANK", "1")  # under torchrun each process takes its own id
    assert torch_device("2,3", gpus=4) == "cuda:3"
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ConfigError, match="--device 2,3: no GPU id for local process 2"):
        torch_device("2,3", gpus=4)
    with pytest.raises(ConfigError, match="--device 4: GPU 4 asked for but this machine has 4"):
        torch_device("4", gpus=4)
    with pytest.raises(ConfigError, match="is not a device"):
        resolve_device("gpu", gpus=1)


def test_gpu_ids_without_a_gpu_are_one_line():
    from fusion_perception.devices import torch_device

    with pytest.raises(ConfigError, match="--device 0: torch sees no CUDA GPU on this machine; use --device cpu"):
        torch_device("0", gpus=0)


def test_every_tool_has_the_same_device_default():
    """No tool picks the CPU or the GPU on its own: each leaves --device to the one rule."""
    from fusion_perception.commands import COMMANDS, load_command

    defaults = {}
    for name in COMMANDS:
        parser = load_command(name).build_parser(name)
        for action in parser._actions:
            if "--device" in action.option_strings:
                defaults[name] = action.default
    assert len(defaults) >= 8 and set(defaults.values()) == {None}, defaults


def test_the_comparison_gives_segmentation_one_gpu(monkeypatch):
    """``compare --device 0,1``: detection gets ultralytics' ids (DDP), segmentation one torch device."""
    from fusion_perception.comparison.compare import ComparisonSettings, _Units, run_unit
    from fusion_perception.registry import TASKS

    got = {}
    tasks = {name: TASKS.get(name)() for name in ("det", "seg")}
    for name, task in tasks.items():
        monkeypatch.setattr(task, "run", lambda request, name=name: got.setdefault(name, request.device))
    units = _Units(Path("o"), ComparisonSettings(device="0,1"), {"det": Path("d"), "seg": Path("s")},
                   {("det", "ir"): Path("f"), ("seg", "ir"): Path("f")}, {"ir": None}, (0,))
    run_unit(tasks["det"], "ir", 0, units)
    run_unit(tasks["seg"], "ir", 0, units)
    assert got == {"det": "0,1", "seg": "cuda:0"}
