"""The simulator's Batch API through the real google-genai SDK: inline and file jobs, their
states (pending, running, succeeded, failed, cancelled, expired), per-request errors, results
inline and as a downloadable file, list paging, and jobs walled per project."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from google.genai import errors, types

from gemgate.simulator import RunningSimulator
from tests.conftest import sim_sdk, tune_sim

LINES = [{"contents": [{"parts": [{"text": f"question {n}"}], "role": "user"}]}
         for n in range(3)]


def test_an_inline_job_runs_and_answers_each_request(batch_sim: RunningSimulator) -> None:
    client = sim_sdk(batch_sim)
    tune_sim(batch_sim, batch_seconds=3600)
    job = client.batches.create(
        model="gemini-2.5-flash",
        src=[*({"contents": line["contents"], "metadata": {"n": str(n)}}
               for n, line in enumerate(LINES)),
             {"contents": [{"parts": [{"text": "bad"}], "role": "wizard"}]}],
        config={"display_name": "eval-1"})
    assert job.state == types.JobState.JOB_STATE_PENDING and job.name.startswith("batches/")
    assert job.display_name == "eval-1"
    tune_sim(batch_sim, batch_seconds=0)
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time
    answers = done.dest.inlined_responses
    assert [a.metadata for a in answers[:3]] == [{"n": "0"}, {"n": "1"}, {"n": "2"}]
    assert all(a.response.text and a.response.usage_metadata.total_token_count
               for a in answers[:3])
    assert answers[3].response is None and answers[3].error.code == 400


def test_a_file_job_writes_a_results_file(batch_sim: RunningSimulator, tmp_path: Path) -> None:
    client = sim_sdk(batch_sim)
    tune_sim(batch_sim, batch_seconds=0)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"key": f"k{n}", "request": line}) + b"\n"
                                for n, line in enumerate(LINES)) + b"not json\n")
    uploaded = client.files.upload(file=str(source),
                                   config={"mime_type": "application/jsonl"})
    job = client.batches.create(model="gemini-2.5-flash", src=uploaded.name)
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    lines = [orjson.loads(x) for x in client.files.download(
        file=done.dest.file_name).splitlines()]
    assert [x.get("key") for x in lines] == ["k0", "k1", "k2", None]
    assert all("response" in x for x in lines[:3]) and lines[3]["error"]["code"] == 400
    # Another project's key sees neither the job nor its results.
    stranger = sim_sdk(batch_sim, "sim-paid-key-1")
    with pytest.raises(errors.ClientError) as refused:
        stranger.batches.get(name=job.name)
    assert refused.value.code == 404
    with pytest.raises(errors.ClientError):
        stranger.files.download(file=done.dest.file_name)
    assert list(stranger.batches.list()) == []


def test_cancel_fail_expire_delete_and_list_pages(batch_sim: RunningSimulator,
                                                  tmp_path: Path) -> None:
    client = sim_sdk(batch_sim)
    tune_sim(batch_sim, batch_seconds=3600)
    first = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "a"}])
    client.batches.cancel(name=first.name)
    assert client.batches.get(name=first.name).state == types.JobState.JOB_STATE_CANCELLED
    tune_sim(batch_sim, batch_seconds=3600, batch_expire_seconds=0.001)
    late = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "b"}])
    assert client.batches.get(name=late.name).state == types.JobState.JOB_STATE_EXPIRED
    tune_sim(batch_sim, batch_seconds=0, batch_expire_seconds=172800)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"nothing here\n")
    uploaded = client.files.upload(file=str(empty), config={"mime_type": "application/jsonl"})
    failed = client.batches.create(model="gemini-2.5-flash", src=uploaded.name)
    assert client.batches.get(name=failed.name).state == types.JobState.JOB_STATE_FAILED
    names = [j.name for j in client.batches.list(config={"page_size": 2})]
    assert sorted(names) == sorted([first.name, late.name, failed.name])
    client.batches.delete(name=first.name)
    assert first.name not in [j.name for j in client.batches.list()]
