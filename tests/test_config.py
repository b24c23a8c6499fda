"""Settings: one table gives YAML keys and flags; every bad value is one line naming the option."""

import pytest

from pbo.config import DEFAULT_STUDY, OPTIONS, ConfigError, build_config, load_file, make_parser, parse_args
from pbo_process import run_pbo, write_config


def test_flags_win_over_the_config_file(tmp_path):
    path = write_config(tmp_path / "c.yaml", objective="branin", budget=30, seed=4)
    cfg = parse_args(["--config", path, "--budget", "8", "--algorithm", "lhs"])
    assert (cfg.objective, cfg.budget, cfg.seed, cfg.algorithm) == ("branin", 8, 4, "lhs")


def test_without_config_the_packaged_default_study_is_the_base():
    assert parse_args([]) == build_config(load_file(DEFAULT_STUDY))


def test_mapping_flags_are_read_as_yaml():
    cfg = parse_args(["--space", "{x: {type: float, low: 0, high: 2}}", "--timeout", "2.5", "--no-isolate"])
    assert cfg.space == {"x": {"type": "float", "low": 0, "high": 2}} and cfg.timeout == 2.5
    assert cfg.isolate is False


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        make_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for opt in OPTIONS:
        assert "--" + opt.name.replace("_", "-") in text
    assert "--config" in text


@pytest.mark.parametrize("values, message", [
    ({"objective": "branin", "budjet": 3}, "unknown option(s) budjet"),
    ({"objective": "branin", "budget": 0}, "budget: must be >= 1, got 0"),
    ({"objective": "branin", "budget": "ten"}, "budget: must be an integer"),
    ({"objective": "branin", "algorithm": "sooo"}, "algorithm: unknown value 'sooo'"),
    ({"objective": "branin", "timeout": -1}, "timeout: must be a number > 0"),
    ({"objective": "branin", "isolate": "yes"}, "isolate: must be true or false"),
    ({"objective": "branin", "space": [1, 2]}, "space: must be a mapping"),
    ({"objective": "branin", "ask_ahead": "sometimes"}, "ask_ahead: unknown value 'sometimes'"),
    ({}, "no objective"),
])
def test_bad_values_name_the_option(values, message):
    with pytest.raises(ConfigError, match=None) as err:
        build_config(values)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("args, message", [
    (["--budget", "0"], "budget: must be >= 1"),
    (["--budjet", "3"], "unrecognized arguments: --budjet"),
    (["--algorithm", "nope"], "algorithm: unknown value 'nope'"),
    (["--objective", "nope"], "unknown objective 'nope'"),
    (["--objective", "math:nope"], "has no callable 'nope'"),
    (["--objective", "branin", "--space", "{x: {type: float, low: 2, high: 1}}"], "space variable 'x': low must be below high"),
    (["--objective", "branin", "--space", "{x: {type: float, low: 0, high: 1, log: true}}"], "log scale needs low > 0"),
    (["--objective", "branin", "--optimizer", "{nope: 1}"], "has no option(s) ['nope']"),
    (["--simulate", "4", "--cost", "{kind: gamma}"], "cost: unknown kind 'gamma'"),
    (["--config", "/nonexistent/c.yaml"], "cannot read config file /nonexistent/c.yaml"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run_pbo(args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_a_config_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_file(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("budget: 3\nspace: {x: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line"):
        load_file(path)
