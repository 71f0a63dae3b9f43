"""`journeyguard serve` refuses to expose the service without a token (issue 18, row 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from journeyguard.features.cli import app
from journeyguard.serving.guard import TOKEN_VARIABLE, api_token, exposure_problem

MINIMAL = '[source]\npath = "events.csv"\n'


def serve(tmp_path: Path, config: str, *options: str, env: dict | None = None):
    path = tmp_path / "jg.toml"
    path.write_text(config)
    return CliRunner().invoke(app, ["serve", "--config", str(path), *options], env=env)


def test_serving_every_address_without_a_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    result = serve(tmp_path, MINIMAL, "--host", "0.0.0.0")
    assert result.exit_code == 2, result.output
    assert "without an API token" in result.output and "--allow-no-token" in result.output


def test_an_empty_token_variable_is_an_error_naming_it(tmp_path):
    result = serve(tmp_path, MINIMAL, env={TOKEN_VARIABLE: ""})
    assert result.exit_code == 2, result.output
    assert f"{TOKEN_VARIABLE} is set but empty" in result.output


def test_an_empty_token_in_the_config_is_an_error_naming_the_key(tmp_path):
    result = serve(tmp_path, MINIMAL + '[serving]\napi_token = ""\n', "--host", "0.0.0.0")
    assert result.exit_code != 0
    assert "[serving] api_token: empty" in result.output


@pytest.mark.parametrize(
    ("host", "token", "refused"),
    [
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("10.1.2.3", None, True),
        ("jg.internal", None, True),
        ("0.0.0.0", "t", False),
        ("127.0.0.1", None, False),
        ("127.0.0.2", None, False),
        ("::1", None, False),
        ("[::1]", None, False),
        ("localhost", None, False),
    ],
)
def test_only_loopback_goes_without_a_token(host, token, refused):
    assert (exposure_problem(host, token) is not None) == refused


def test_the_config_token_wins_over_the_variable():
    assert api_token("a", {TOKEN_VARIABLE: "b"}) == "a"
    assert api_token(None, {TOKEN_VARIABLE: "b"}) == "b"
    assert api_token(None, {}) is None
    with pytest.raises(ValueError, match=TOKEN_VARIABLE):
        api_token(None, {TOKEN_VARIABLE: " "})
