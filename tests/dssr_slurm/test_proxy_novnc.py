"""A real noVNC desktop in a Slurm job, opened by headless Chromium through DSSR's proxy only.

The job (on the test cluster's node, this host) runs Xvfb with a solid root colour, x11vnc on
the node's loopback, and websockify serving noVNC on the job's service port. Chromium opens the
URL that ``info`` gives (path-based), noVNC connects over the proxied websocket, and the test
reads the screenshot's pixels for the desktop's colour. The screenshot is kept (path printed).
"""

import io
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from headless_chromium import HeadlessChromium
from PIL import Image
from slurm_helpers import KIRBY_MAIL, SHARED, bearer_for, job_of, template, wait_running

from dssr_core.testing import wait_until
from dssr_core.testing.plugin import DssrServer, find_free_port

# The job's desktop is the host's Debian packages, so only the host's 22.05 cluster runs it
# (24.11 and 26.05 run jobs in their chroots). A chroot would need some 260 packages more by
# bookworm's dependency lists, about 150 MB (Xvfb's Mesa with LLVM, novnc's nodejs, websockify's
# numpy, x11vnc's Tk, cpp), against 137 in the whole chroot (52 s to build): far over the ~20 s
# a cold build may grow by. The proxy itself is proven on every version by test_proxy_cluster.py
# and test_proxy_rest.py.
pytestmark = [pytest.mark.slow, pytest.mark.slurm_versions("22.05")]
#: Interactive jobs hold their node alone, so they start once the shared cluster's other jobs end.
INTERACTIVE_START = 480
PACKAGES = ("novnc", "websockify", "xvfb", "x11vnc", "x11-xserver-utils", "chromium")
DESKTOP = (60, 159, 42)  # the colour the job's X session paints
ARTEFACTS = Path(os.environ.get("DSSR_TEST_ARTEFACTS", Path(tempfile.gettempdir()) / "dssr-test-artefacts"))


@pytest.fixture(scope="module")
def desktop_packages():
    """Debian's noVNC, websockify, Xvfb, x11vnc and Chromium; installed when missing (idempotent)."""
    missing = [name for name in PACKAGES
               if subprocess.run(["dpkg", "-s", name], capture_output=True).returncode != 0]
    if missing:
        done = subprocess.run(["apt-get", "install", "-y", "-q", *missing], capture_output=True, text=True,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=1200)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def desktop_body(vnc_port: int, display: int) -> str:
    colour = "#" + "".join(f"{part:02x}" for part in DESKTOP)
    # The root is painted once x11vnc runs: painted before, x11vnc serves it black.
    return (f"Xvfb :{display} -screen 0 800x600x24 -nolisten tcp & sleep 2\n"
            f"x11vnc -display :{display} -rfbport {vnc_port} -localhost -nopw -forever -shared -quiet &\n"
            f"sleep 2; DISPLAY=:{display} xsetroot -solid '{colour}'\n"
            f"exec websockify --web /usr/share/novnc $JARVICE_SERVICE_PORT 127.0.0.1:{vnc_port}")


def desktop_share(png: bytes) -> float:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = [image.getpixel((x, y)) for x in range(0, image.width, 4) for y in range(0, image.height, 4)]
    close = sum(1 for pixel in pixels if all(abs(a - b) <= 8 for a, b in zip(pixel, DESKTOP, strict=True)))
    return close / len(pixels)


def shoot_until_desktop(page: str, out: Path) -> float:
    """Open noVNC in Chromium and take screenshots until the desktop shows (or 60 s pass)."""
    with HeadlessChromium() as browser:
        browser.navigate(page)
        deadline = time.monotonic() + 60
        while True:
            png = browser.screenshot()
            share = desktop_share(png)
            if share > 0.3 or time.monotonic() > deadline:
                out.write_bytes(png)
                status = browser.evaluate("document.getElementById('noVNC_status')?.innerText")
                print(f"\nnoVNC status: {status!r}")
                return share
            time.sleep(1)


def test_chromium_shows_the_novnc_desktop_through_the_proxy(desktop_packages, slurm_env, tmp_path):
    service_port, vnc_port = find_free_port(), find_free_port()
    server = DssrServer({**slurm_env, "DSSR_SHELL_SERVICE_PORT": str(service_port)}, tmp_path / "dssr.log")
    server.env["JARVICE_JOBS_DOMAIN"] = f"http://127.0.0.1:{server.port}/job$"
    server.start()
    api = server.api()
    number = random.randint(100_000, 999_999)
    name = f"cli-novnc-{number}"
    job = job_of(name, api.submit(name, template(desktop_body(vnc_port, 100 + number % 800), devices=SHARED,
                                                 extra="JOBOBJ_INTERACTIVE=true"),
                                  number=number, bearer=bearer_for(KIRBY_MAIL)))
    job["number"] = number
    try:
        wait_running(api, job, timeout=INTERACTIVE_START)
        url = api.post(f"/request/{name}/{number}/{job['jobid']}/info", {"qs": {}}).json["url"]
        assert url == f"http://127.0.0.1:{server.port}/job{number}"
        wait_until(lambda: requests.get(url + "/vnc.html", timeout=10).status_code == 200, 60,
                   what="noVNC to be served through the proxy")
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        out = ARTEFACTS / f"novnc-job{number}.png"
        page = f"{url}/vnc.html?autoconnect=true&resize=scale&path=job{number}/websockify"
        share = shoot_until_desktop(page, out)
        print(f"\nnoVNC screenshot: {out} (desktop colour on {share:.0%} of the pixels)")
        assert share > 0.3, f"the screenshot {out} does not show the desktop's colour ({share:.0%})"
    finally:
        api.post("/terminate", {k: job[k] for k in ("name", "number", "jobid")})
        server.stop()
