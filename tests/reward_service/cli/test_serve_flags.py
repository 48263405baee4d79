"""`rbr serve`'s flags come from Settings: one per field, grouped, typed; a flag beats RBR_* and the file."""

from __future__ import annotations

import pytest

from reward_service.cli import build_parser
from reward_service.cli._common import settings_overrides
from reward_service.config import SETTING_GROUPS, Settings, load_settings


def serve_args(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_every_setting_is_in_one_group_and_is_a_serve_flag(capsys):
    grouped = [n for names in SETTING_GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(Settings.model_fields), "a new Settings field needs its SETTING_GROUPS group"
    with pytest.raises(SystemExit):
        serve_args("--help")
    text = capsys.readouterr().out
    assert all(f"--{n.replace('_', '-')}" in text for n in Settings.model_fields)
    assert "grader settings" in text and "reward settings" in text and "server settings" in text


def test_flags_are_typed_and_beat_the_environment_and_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "rbr.yaml"
    cfg.write_text("rbr:\n  port: 7000\n  max_items: 3\n  rbr_scale: 0.5\n")
    monkeypatch.setenv("RBR_PORT", "7001")
    monkeypatch.setenv("RBR_MAX_ITEMS", "4")
    args = serve_args("--port", "7002", "--grader-layers", "[8, 12]", "--readout-cache", "--weights", "w.json",
                      "--grader-vllm-args", '{"max_model_len": 4096}', "--auto-reward", "expected")  # fmt: skip
    s = load_settings(str(cfg), **settings_overrides(args))
    assert (s.port, s.max_items, s.rbr_scale) == (7002, 4, 0.5)  # flag > environment > file
    assert s.grader_layers == (8, 12) and s.readout_cache is True and str(s.weights_file) == "w.json"
    assert s.grader_vllm_args == {"max_model_len": 4096} and s.auto_reward == "expected"
    assert settings_overrides(serve_args()) == {}, "an unset flag leaves the file and environment alone"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "abc"], "argument --port: invalid int value: 'abc'"),
        (["--grader-layers", "[8"], "argument --grader-layers: invalid JSON value: '[8'"),
        (["--auto-reward", "mean"], "argument --auto-reward: invalid choice: 'mean'"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        serve_args(*argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_an_out_of_range_setting_exits_2_naming_the_field(capsys):
    from reward_service.cli import main

    assert main(["serve", "--port", "70000"]) == 2
    assert "port: Input should be less than or equal to 65535" in capsys.readouterr().err
