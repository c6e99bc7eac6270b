"""Exporting audit records: filters, JSONL as written, CSV per chunk, OCSF events."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_audit_log import KEY, SECRET_TEXT, make_retrieval

from ragguard.audit import JsonlAuditLog, export_records, read_audit_records, to_ocsf
from ragguard.audit._export import CSV_COLUMNS, parse_time, select_records

DAY = datetime(2025, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """A log of six retrievals by alice and bob, one per hour from 2025-03-01 00:00 UTC."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, key=KEY, data_source="docs") as log:
        for hour in range(6):
            subject = "alice" if hour % 2 == 0 else "bob"
            log.record(make_retrieval(subject, when=DAY + timedelta(hours=hour)))
        log.record(make_retrieval("carol", released=0, withheld=0, when=DAY + timedelta(hours=6)))
    return path


def export(path: Path, format: str, **filters: object) -> str:
    """Export the log at ``path`` to a string."""
    out = io.StringIO()
    entries = select_records(read_audit_records(path), **filters)  # type: ignore[arg-type]
    export_records(entries, out, format)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01", DAY),
        ("2025-03-01T02:00", DAY + timedelta(hours=2)),
        ("2025-03-01T02:00:00Z", DAY + timedelta(hours=2)),
        ("2025-03-01T03:00:00+01:00", DAY + timedelta(hours=2)),
    ],
)
def test_times_parse_as_utc(text: str, expected: datetime) -> None:
    """Dates, naive times (UTC), Z and offsets all become aware UTC datetimes."""
    assert parse_time(text) == expected


def test_an_unparseable_time_is_a_value_error() -> None:
    """A bad --since/--until value is reported, not guessed."""
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("last tuesday")


def test_filters_select_by_time_window_and_subject(log_path: Path) -> None:
    """since is inclusive, until exclusive, subject exact."""
    entries = list(
        select_records(
            read_audit_records(log_path),
            since=DAY + timedelta(hours=1),
            until=DAY + timedelta(hours=5),
            subject="bob",
        )
    )
    assert [e.record.time.hour for e in entries] == [1, 3]


def test_jsonl_export_writes_records_exactly_as_logged(log_path: Path) -> None:
    """Exported JSONL lines are byte-identical to the log's, so their hashes still check."""
    exported = export(log_path, "jsonl", subject="alice").splitlines()
    original = log_path.read_text().splitlines()
    assert len(exported) == 3
    assert set(exported) <= set(original)


def test_csv_export_has_one_row_per_considered_chunk(log_path: Path) -> None:
    """Five released and five withheld chunks make ten rows; a retrieval with none gets one."""
    rows = list(csv.DictReader(io.StringIO(export(log_path, "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    alice = [r for r in rows if r["subject_id"] == "alice"]
    assert len(alice) == 3 * 10
    assert {r["outcome"] for r in alice} == {"released", "withheld"}
    released = [r for r in alice if r["outcome"] == "released"]
    assert all(r["rule"].startswith("line 1") and r["provenance"] == "verified" for r in released)
    [carol] = [r for r in rows if r["subject_id"] == "carol"]
    assert carol["chunk_id"] == ""
    assert carol["outcome"] == ""


def test_csv_export_carries_screen_flags_of_released_chunks(tmp_path: Path) -> None:
    """A chunk a flag-action screen marked keeps its flags in the CSV row."""
    retrieval = make_retrieval("alice", released=2, withheld=1)
    flagged = dataclasses.replace(
        retrieval.released[0], flags=("secrets: an email address", "pii: a phone number")
    )
    retrieval = dataclasses.replace(retrieval, released=(flagged, *retrieval.released[1:]))
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path) as log:
        log.record(retrieval)
    rows = list(csv.DictReader(io.StringIO(export(path, "csv"))))
    assert [r["flags"] for r in rows] == [
        "secrets: an email address; pii: a phone number",
        "",
        "",
    ]


def test_no_export_format_carries_chunk_text(log_path: Path) -> None:
    """Whatever the format, the text the log never held cannot leak through an export."""
    for format in ("jsonl", "csv", "ocsf"):
        assert "SECRET-CHUNK-TEXT" not in export(log_path, format)
    assert SECRET_TEXT.split()[0] not in log_path.read_text()


def test_ocsf_export_is_one_datastore_activity_query_event_per_retrieval(log_path: Path) -> None:
    """OCSF: class 6005 Datastore Activity, activity 4 Query, with the documented mapping."""
    events = [json.loads(line) for line in export(log_path, "ocsf").splitlines()]
    records = [e.record for e in read_audit_records(log_path)]
    assert len(events) == len(records) == 7
    event, record = events[0], records[0]
    assert event["class_uid"] == 6005
    assert event["category_uid"] == 6
    assert event["activity_id"] == 4
    assert event["type_uid"] == 600504
    assert event["severity_id"] == 1
    assert event["time"] == int(record.time.timestamp() * 1000)
    assert event["metadata"]["uid"] == record.decision_id
    assert event["metadata"]["version"] == "1.3.0"
    assert event["metadata"]["product"]["name"] == "ragguard"
    assert event["actor"]["user"]["uid"] == "alice"
    assert event["src_endpoint"]["hostname"] == record.host
    assert event["database"]["name"] == "docs"
    assert event["query_info"]["uid"] == record.query_digest
    assert [d["id"] for d in event["query_info"]["data"]["released"]] == [
        c.id for c in record.released
    ]
    assert event["authorizations"][0]["policy"]["version"] == record.policy_version
    assert event["disposition"] == "Allowed"
    unmapped = event["unmapped"]["ragguard"]
    assert [d["reason"] for d in unmapped["withheld"]] == [c.reason for c in record.withheld]
    assert unmapped["hash"] == record.hash


def test_ocsf_marks_a_retrieval_where_everything_was_withheld_as_blocked(tmp_path: Path) -> None:
    """Nothing released but something withheld: action Denied, disposition Blocked."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path) as log:
        log.record(make_retrieval(released=0, withheld=3))
    [entry] = read_audit_records(path)
    event = to_ocsf(entry.record)
    assert (event["action_id"], event["disposition_id"]) == (2, 2)
    assert event["disposition"] == "Blocked"


def test_unknown_export_format_is_refused(log_path: Path) -> None:
    """Only jsonl, csv and ocsf exist."""
    with pytest.raises(ValueError, match="unknown export format"):
        export(log_path, "xml")
