"""Bad command lines, table-driven, through the real CLI: each exits 2 with an error naming the
option (or argument) and what was expected, and contacts nothing (the tripwire counts 0: no SSH
host, no engine, not even the local one for `build`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.cli import main
from tests.tripwire import Tripwire, tripwire_fixture  # noqa: F401 - the fixture

INVENTORY = "hosts:\n  mgr: {}\n  second: {}\ngroups:\n  prod:\n    hosts: [mgr, second]\n"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    #: Substrings the error output must contain; "{dir}" is the test's folder.
    expect: tuple[str, ...]


CASES = [
    # --- where to connect ---------------------------------------------------------------------
    Case("host-two-ats", ("push", "-H", "a@b@mgr"),
         ("--host 'a@b@mgr'", "expected [user@]host[:port]")),
    Case("host-port-zero", ("status", "-H", "mgr:0"), ("port 0 is out of range 1-65535",)),
    Case("host-port-too-big", ("push", "-H", "deploy@mgr:99999"),
         ("port 99999 is out of range 1-65535",)),
    Case("host-port-not-a-number", ("push", "-H", "mgr:ssh"), ("--host 'mgr:ssh'",)),
    Case("host-empty", ("push", "-H", ""), ("--host ''", "expected [user@]host[:port]")),
    Case("host-with-space", ("remove", "--yes", "-H", "mgr second"), ("--host 'mgr second'",)),
    Case("host-and-inventory", ("push", "-H", "mgr", "-i", "{dir}/inventory.yaml"),
         ("--host and -i/--inventory are exclusive",)),
    Case("limit-without-inventory", ("push", "--limit", "prod"),
         ("--limit needs an inventory (-i FILE)",)),
    Case("inventory-missing", ("push", "-i", "{dir}/nope.yaml"),
         ("inventory {dir}/nope.yaml does not exist",)),
    Case("ssh-config-missing", ("status", "-H", "mgr", "--ssh-config", "{dir}/no_config"),
         ("--ssh-config: ssh config file {dir}/no_config does not exist",)),
    # --- waits and names ----------------------------------------------------------------------
    Case("timeout-nan", ("push", "--timeout", "nan"),
         ("--timeout nan: expected a number of seconds above 0",)),
    Case("timeout-infinite", ("push", "-H", "mgr", "--timeout", "inf"), ("--timeout inf",)),
    Case("timeout-negative", ("scale", "sklearn-model=2", "--timeout", "-5"),
         ("--timeout -5: expected a number of seconds above 0",)),
    Case("timeout-zero", ("remove", "--yes", "--timeout", "0"), ("--timeout 0",)),
    Case("timeout-milliseconds", ("rollback", "--timeout", "300000"),
         ("--timeout 300000", "at most 86400")),
    Case("timeout-words", ("push", "--timeout", "soon"),
         ("argument --timeout: invalid float value: 'soon'",)),
    Case("stack-uppercase", ("status", "--stack", "MLOps"), ("--stack 'MLOps'", "lower-case")),
    # --stack names a folder under the state dir on the manager: no way out of it.
    Case("stack-path", ("history", "-H", "mgr", "--stack", "../../etc"), ("--stack '../../etc'",)),
    Case("stack-empty", ("remove", "--yes", "--stack", ""), ("--stack ''",)),
    # --- per-command arguments ----------------------------------------------------------------
    Case("scale-no-count", ("scale", "sklearn-model"),
         ("scale: 'sklearn-model': expected SERVICE=N",)),
    Case("scale-words", ("scale", "sklearn-model=two"), ("N must be a whole number", "'two'")),
    Case("scale-negative", ("scale", "sklearn-model=-1"), ("N must be 0 or more",)),
    Case("scale-twice", ("scale", "sklearn-model=1", "sklearn-model=2"),
         ("sklearn-model is given twice (1 and 2)",)),
    Case("scale-nothing", ("scale",), ("the following arguments are required: SERVICE=N",)),
    Case("rollback-revision-zero", ("rollback", "--to-revision", "0"),
         ("--to-revision 0: revisions are numbered from 1",)),
    Case("rollback-service-and-revision", ("rollback", "sklearn-model", "--to-revision", "2"),
         ("give SERVICE or --to-revision N, not both",)),
    Case("logs-tail-negative", ("logs", "--tail", "-3"), ("--tail -3: expected 0 or more lines",)),
    Case("logs-tail-words", ("logs", "--tail", "all"), ("argument -n/--tail: invalid int value",)),
    Case("logs-since-words", ("logs", "--since", "yesterday"),
         ("--since 'yesterday'", "a duration like 10m")),
    Case("logs-several-hosts", ("logs", "-i", "{dir}/inventory.yaml"),
         ("logs reads one host at a time; the selection has 2", "--limit HOST")),
    Case("push-env-file-missing", ("push", "--env-file", "{dir}/.env.prod"),
         ("--env-file {dir}/.env.prod: no such file",)),
    Case("push-resolve-image-unknown", ("push", "--resolve-image", "sometimes"),
         ("argument --resolve-image: invalid choice: 'sometimes'",)),
    Case("push-missing-secret-unknown", ("push", "--allow-missing-secret", "s3_secret_key"),
         ("argument --allow-missing-secret: invalid choice: 's3_secret_key'",)),
    Case("push-values-file-missing", ("push", "-i", "{dir}/inventory.yaml", "-f", "{dir}/x.yaml"),
         ("{dir}/x.yaml: file not found",)),
    Case("push-bad-set", ("push", "-H", "mgr", "--set", "services.minio.replicas=-1"),
         ("--set services.minio.replicas=-1", "greater than or equal to 0")),
    Case("compose-tail-words", ("compose", "logs", "--tail", "lots"),
         ("--tail lots: expected 0 or more lines (or 'all')",)),
    # --- build: not even the local engine is contacted ------------------------------------------
    Case("build-ca-cert-missing", ("build", "--ca-cert", "{dir}/proxy.crt"),
         ("--ca-cert {dir}/proxy.crt: no such file",)),
    Case("build-context-missing", ("build", "--context-dir", "{dir}/services"),
         ("--context-dir {dir}/services: no such folder",)),
    Case("rebuild-timeout-nan", ("rebuild", "--timeout", "nan"), ("--timeout nan",)),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_command_line_is_refused_before_any_connection(
    case: Case, tripwire: Tripwire, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    argv = [a.replace("{dir}", str(tmp_path)) for a in case.argv]

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals (types, choices, missing arguments)
        code = int(exc.code or 0)

    err = capsys.readouterr().err
    assert code == 2, f"exit {code}, expected 2 (bad input); stderr:\n{err}"
    for want in case.expect:
        want = want.replace("{dir}", str(tmp_path))
        assert want in err, f"{want!r} missing from:\n{err}"
    assert "Traceback" not in err
    assert tripwire.hits == [], f"contacted {tripwire.hits} on bad input"
    assert not (tmp_path / "state").exists()


def test_remove_volumes_without_a_terminal_asks_for_yes(
    tripwire: Tripwire, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--volumes deletes data: with no terminal to confirm on, it is refused up front."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a pipe, as in CI: not a terminal
    assert main(["remove", "--volumes", "-H", "mgr"]) == 2
    assert "rerun with --volumes --yes" in capsys.readouterr().err
    assert tripwire.hits == []


def test_tripwire_sees_the_local_engine(
    tripwire: Tripwire, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control for the table: a good command line does reach the (tripwire) engine."""
    assert main(["status", "--stack", "mlops"]) == 4
    assert "local engine" in capsys.readouterr().err
    assert tripwire.hits == ["engine"]
