"""Issue 13 finding 8: bad state and config files get a clear message, exit 2, no traceback."""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path

import pytest

from crm_pulse.cli import main
from crm_pulse.streams.embedded.database import Database
from tests.ports import free_port


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def config(tmp_path: Path, state: str = "s.sqlite", extra: str = "") -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(
        f"timezone: UTC\nconnectors: []\nruntime:\n  state_path: {state}\n"
        f"  listen: 127.0.0.1:{free_port()}{extra}\n"
    )
    return path


TAMPERED = [
    "UPDATE meta SET value = 'x' WHERE name = 'schema_version'",
    "INSERT INTO meta VALUES ('consumed', '1.5')",
    "INSERT INTO meta VALUES ('applied', 'many')",
    "INSERT INTO cursors VALUES ('crm', 'poll', '\"text\"', 0)",
    "INSERT INTO outbox VALUES ('c','o','r','f','[1]',1,0,0,NULL)",
    "INSERT INTO dead_letters (connector, object, record_id, field, value, reason, attempts, "
    "failed_ms) VALUES ('c','o','r','f','\"v\"','x',1,0)",
    "INSERT INTO state VALUES ('k', x'8005', x'8005')",
    "INSERT INTO state VALUES ('k', x'80054b012e', x'80054b012e')",  # key 1: not a tuple
    "UPDATE meta SET value = '99' WHERE name = 'schema_version'",
]


@pytest.mark.parametrize("sql", TAMPERED)
@pytest.mark.parametrize("command", ["report", "run", "quarantine", "deadletters"])
def test_tampered_state_exits_2_naming_the_file_and_never_runs(
    tmp_path: Path, sql: str, command: str
) -> None:
    path = config(tmp_path)
    Database(tmp_path / "s.sqlite").close()
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        conn.execute(sql)
    argv = {
        "report": ["report"],
        "run": ["run", "--for", "0.2"],
        "quarantine": ["quarantine", "list"],
        "deadletters": ["deadletters", "list"],
    }[command]
    code, out, err = run_cli(*argv, "--config", str(path))
    if "INTO state" in sql and command in ("quarantine", "deadletters"):
        assert code == 0, err  # the triage commands do not need the metric state
        return
    assert code == 2, (out, err)
    assert "s.sqlite" in err and "Traceback" not in err and "state file" in err


def test_a_state_file_that_is_not_sqlite_exits_2(tmp_path: Path) -> None:
    path = config(tmp_path)
    (tmp_path / "s.sqlite").write_text("hello, I am a text file\n" * 50)
    for argv in (["report"], ["run", "--for", "0.1"]):
        code, _, err = run_cli(*argv, "--config", str(path))
        assert code == 2 and "not a usable SQLite database" in err


def test_report_resolves_variables_like_run_and_never_creates_a_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, state="${STATE}")
    monkeypatch.delenv("STATE", raising=False)
    code, _, err = run_cli("report", "--config", str(path))
    assert code == 2 and "runtime.state_path: environment variable STATE is not set" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.yaml"]
    monkeypatch.setenv("STATE", str(tmp_path / "x.sqlite"))
    code, _, err = run_cli("report", "--config", str(path))
    assert code == 2 and "x.sqlite: does not exist" in err
    assert not (tmp_path / "x.sqlite").exists()
    code, _, err = run_cli("run", "--config", str(path), "--for", "0.1")
    assert code == 0, err
    code, out, err = run_cli("report", "--config", str(path))
    assert code == 0 and out, err


BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{n}: &{n} [{', '.join(['*' + p] * 9)}]"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BOMB, "aliases expand to"),
        ("timezone: " + "[" * 5000 + "]" * 5000, "nested deeper"),
        ("\n".join(" " * 2 * i + f"k{i}:" for i in range(400)), "nested deeper"),
        ("timezone: UTC\n" + "#" * 2_000_000, "at most"),
    ],
)
def test_yaml_bombs_fail_fast_with_a_clear_message(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(text)
    started = time.process_time()  # CPU seconds: a bomb burns CPU; a busy machine only waits
    code, out, err = run_cli("check", "--config", str(path))
    err += out
    assert time.process_time() - started < 2.0
    assert code == 2 and why in err and "Traceback" not in err and "internal error" not in err


def test_errors_never_quote_a_credential_and_quote_other_values_briefly(tmp_path: Path) -> None:
    secret = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"
    path = tmp_path / "d.yaml"
    path.write_text(
        "timezone: UTC\nconnectors:\n  - pipedrive:\n"
        f"      api_token: {secret}\n"
        f"      base_url: {secret}\n"
        f"      poll_interval: {secret}\n"
        f"runtime:\n  listen: {secret}\n"
    )
    code, out, err = run_cli("check", "--config", str(path))
    text = out + err
    assert code == 2 and "api_token" in text and "base_url" in text
    assert secret not in text
    assert secret[:10] in text  # other values: a short prefix, enough to recognise them
