"""Records round-trip through JSONL; broken files give one-line errors; interrupted writes are tolerated."""

import json
import math

import pytest

from bench import records
from bench.records import CaseKey, Record, RecordsError


def make(**kw):
    base = dict(
        framework="tensorflow",
        step="manual",
        backend="eager",
        device="cpu",
        n=10,
        m=4,
        nh=3,
        dtype="float32",
        status="ok",
        samples_s=(0.3, 0.1, 0.2, 0.4),
        warmup_s=(1.0,),
        loss=1.5,
        rel_errs={"loss": 1e-7},
        fingerprint={"cpu_model": "x"},
        ceilings={"gemm_gflops": 100.0},
        flops=10**9,
    )
    base.update(kw)
    return Record(**base)


def test_round_trip(tmp_path):
    path = tmp_path / "run" / "records.jsonl"
    written = [make(), make(step="tape", status="failed", error="wrong answer", samples_s=())]
    for r in written:
        records.append(path, r)
    assert records.read(path.parent) == written
    assert records.read(path) == written


def test_derived_statistics():
    s = make().summary
    assert s.median_s == pytest.approx(0.25)
    assert s.iqr_s == pytest.approx(0.325 - 0.175)
    assert s.gflops == pytest.approx(1e9 / 0.25 / 1e9)
    assert s.pct_of_peak == pytest.approx(4.0) and s.samples == 4 and math.isnan(s.ci_lo_s)
    assert make().case == CaseKey("tensorflow", "manual", "eager", "cpu", 10, 4, 3, "float32", False, "warm", "", 1)
    assert make(engine="sharding", replicas=2).case.label.endswith("float32 sharding x2")
    assert make(tf32=True, cache="cold").case.label.endswith("float32+tf32 cold")
    assert make(tf32=True).case.precision == "tf32" and make(dtype="bfloat16", tf32=True).case.precision == "bfloat16"
    assert make().case.name == "tensorflow/manual/eager/cpu"
    derived = json.loads(make().to_json())["derived"]
    assert derived["median_s"] == pytest.approx(0.25) and derived["median_ci95_s"] == [None, None]


def test_truncated_last_line_is_dropped(tmp_path):
    path = tmp_path / "records.jsonl"
    records.append(path, make())
    with open(path, "a") as f:
        f.write(make(step="tape").to_json()[:40])  # a write cut short by a kill
    assert [r.step for r in records.read(path)] == ["manual"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json}\n" + make().to_json() + "\n", ":1: not a valid JSON line"),
        ("[1, 2]\n", ":1: expected a JSON object"),
        (json.dumps({"framework": "tensorflow"}) + "\n", ":1: step: missing"),
        (make().to_json().replace('"n": 10', '"n": "ten"') + "\n", ":1: n: expected a whole number"),
        (make().to_json().replace('"status": "ok"', '"status": "great"') + "\n", ":1: status: 'great' is not one of"),
    ],
)
def test_broken_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "records.jsonl"
    path.write_text(content)
    with pytest.raises(RecordsError) as e:
        records.read(path)
    assert message in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(RecordsError, match="no such results file"):
        records.read(tmp_path / "nope.jsonl")


def test_repair_cuts_an_unfinished_last_line_so_appends_stay_valid(tmp_path):
    path = tmp_path / "records.jsonl"
    records.append(path, make())
    with open(path, "a") as f:
        f.write(make(step="tape").to_json()[:40])
    records.repair(path)
    records.append(path, make(step="module"))
    assert [r.step for r in records.read(path)] == ["manual", "module"]
    records.repair(path)  # a whole file is left alone
    assert [r.step for r in records.read(path)] == ["manual", "module"]


def test_null_or_wrong_nested_fields(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(make().to_json().replace('"ceilings": {"gemm_gflops": 100.0}', '"ceilings": null') + "\n")
    (r,) = records.read(path)
    assert r.ceilings == {} and math.isnan(r.summary.pct_of_peak) and "derived" in r.to_json()
    assert json.loads(r.to_json())["derived"]["pct_of_peak"] is None
    path.write_text(make().to_json().replace('"fingerprint": {"cpu_model": "x"}', '"fingerprint": [1]') + "\n")
    with pytest.raises(RecordsError, match="fingerprint: expected a JSON object"):
        records.read(path)


def test_the_canary_times_round_trip_and_a_record_without_them_reads(tmp_path):
    path = tmp_path / "records.jsonl"
    with_canary = make(rounds=(0, 0, 1, 2), canary_s=(0.002, 0.004, 0.003))
    records.append(path, with_canary)
    (back,) = records.read(path)
    assert back == with_canary and back.summary.canary_s == pytest.approx(0.003)
    old = json.loads(make().to_json())
    del old["canary_s"]  # a record written before the canary
    path.write_text(json.dumps(old) + "\n")
    (r,) = records.read(path)
    assert r.canary_s == () and math.isnan(r.summary.canary_s)
    path.write_text(make(rounds=(0, 0, 1, 1), canary_s=(0.002, 0.004, 0.003)).to_json() + "\n")
    with pytest.raises(RecordsError, match="canary_s: 3 canary times for 2 rounds"):
        records.read(path)
    path.write_text(make().to_json().replace('"canary_s": []', '"canary_s": [-1]') + "\n")
    with pytest.raises(RecordsError, match="canary_s: -1 is not a time"):
        records.read(path)


def test_records_of_schema_3_read_their_fingerprint_from_env(tmp_path):
    """Before schema 4 the fingerprint was stored as "env": such a file reads the same."""
    path = tmp_path / "records.jsonl"
    old = json.loads(make().to_json())
    old["env"] = old.pop("fingerprint")
    old["schema"] = 3
    path.write_text(json.dumps(old) + "\n")
    (r,) = records.read(path)
    assert r.fingerprint == {"cpu_model": "x"} and json.loads(r.to_json())["fingerprint"] == {"cpu_model": "x"}
