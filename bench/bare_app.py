"""The floor for bench_api.py: a bare Falcon + waitress app answering the same shapes."""

import json
import sys

import falcon
import waitress


class Live:
    def on_get(self, req, resp):
        resp.media = {"status": "OK"}


class RunStatus:
    def on_post(self, req, resp):
        args = json.loads(req.get_media()["args"])
        resp.media = [["localhost"], "00:00:01", f"{args['name']}/{args['number']}/{args['jobid']}", None]


def main() -> None:
    port, threads = int(sys.argv[1]), int(sys.argv[2])
    app = falcon.App()
    app.add_route("/live", Live())
    app.add_route("/runstatus", RunStatus())
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


if __name__ == "__main__":
    main()
