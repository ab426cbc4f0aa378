"""No credential, nor anything taken from the job's secrets, reaches the returned script
(``fscript``, after ``redact``), a log line or the init report."""

import json
import logging

from dssr_core.models import ScriptRequest
from dssr_singularity.credentials import b64

JOB_USER, JOB_PASS = "job-user-7f3a", "job-pass-Q9!z"
CTR_USER, CTR_PASS = "ctr-user-1c2d", "ctr-pass-Zx8#"
OTHER_PASS = "other-registry-pass-55"
INIT_USER, INIT_PASS = "_json_key_init", '{"private_key": "init-key-0xdead"}'
PROXY_PASS = "proxy-pass-77"


SETTINGS = {
    "JARVICE_DOCKER_USERNAME": b64(INIT_USER), "JARVICE_DOCKER_PASSWORD": b64(INIT_PASS),
    "JARVICE_BAREMETAL_HTTP_PROXY": f"http://puser:{PROXY_PASS}@proxy:3128",
    "JARVICE_SLURM_HTTPS_PROXY": f"http://puser:{PROXY_PASS}@proxy:3129",
}
DOCKER_SECRET = json.dumps({"server": "nvcr.io", "username": JOB_USER, "password": JOB_PASS})


def forbidden(ctr: str) -> list[str]:
    values = [JOB_USER, JOB_PASS, CTR_USER, CTR_PASS, OTHER_PASS, INIT_USER, INIT_PASS,
              PROXY_PASS, "init-key-0xdead"]
    return values + [b64(v) for v in values] + [b64(f"{CTR_USER}:{CTR_PASS}"), ctr]


def test_redacted_script_and_logs_hold_no_secret(executor_for, template, ctrsecret, caplog):
    caplog.set_level(logging.DEBUG)
    executor = executor_for(**SETTINGS)
    ctr = ctrsecret({"quay.io": {"auth": b64(f"{CTR_USER}:{CTR_PASS}")},
                     "ghcr.io": {"username": "o", "password": OTHER_PASS}})
    for repo, used in (("nvcr.io/nvidia/x:1", (JOB_USER, JOB_PASS)),
                       ("quay.io/team/app:2", (CTR_USER, CTR_PASS))):
        job = executor.render(ScriptRequest("job", 1, 1, template(
            JOBOBJ_REPO=repo, JOBOBJ_DOCKER_SECRET=DOCKER_SECRET, JOBOBJ_CTRSECRET=ctr)))
        # The script that runs has what the pulls need, and upstream's facts: a leak would show.
        assert f"export JARVICE_DOCKER_PASSWORD={b64(used[1])}" in job.script
        assert b64(INIT_PASS) in job.script and PROXY_PASS in job.script
        assert ctr in job.script and JOB_PASS in job.script
        fscript = executor.redact(job.script)
        for value in forbidden(ctr):
            assert value not in fscript, value
            assert value not in caplog.text, value
        assert "export SCHTTP_PROXY=http://***@proxy:3128\n" in fscript
        assert f"export JARVICE_APP_IMAGE=docker://{repo}\n" in fscript   # the rest stays
    assert "credentials: JOBOBJ_DOCKER_SECRET" in caplog.text
    assert "credentials: JOBOBJ_CTRSECRET" in caplog.text


def test_the_init_report_holds_no_secret(executor_for):
    executor = executor_for(JARVICE_DOCKER_USERNAME=b64(INIT_USER),
                            JARVICE_DOCKER_PASSWORD=b64(INIT_PASS),
                            JARVICE_BAREMETAL_HTTP_PROXY=f"http://puser:{PROXY_PASS}@proxy:3128")
    text = repr(executor.report()) + repr(executor.config)
    for value in (INIT_USER, INIT_PASS, b64(INIT_USER), b64(INIT_PASS), PROXY_PASS):
        assert value not in text
    assert ("http proxy", "http://***@proxy:3128") in executor.report()
    assert ("init image credentials", "set") in executor.report()
