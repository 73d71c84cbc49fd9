"""The what-if page's web app: a small Starlette (ASGI) app served by uvicorn, with plain ``fetch`` in the page.

Why this stack (README "The what-if page"): the page is one screen of levers and panels over a Python engine,
so the server only has to answer a few JSON requests fast and hand out two static files. Starlette is a small,
well-kept ASGI toolkit (two pure-Python dependencies: anyio, and uvicorn's h11) — no framework to learn,
no build step, no JavaScript bundle; the charts are SVG drawn in Python (:mod:`planner.serve.render`), so
nothing is fetched from a CDN and the page works on a machine with no internet.

Safety, by default:

- it listens on 127.0.0.1; any other ``--host`` needs a random token printed at start and checked on every
  request (query ``?token=``, then an HttpOnly SameSite=Strict cookie, or the ``X-Planner-Token`` header);
- on loopback the Host header must name the loopback address (a web page elsewhere cannot reach the server
  through DNS rebinding), and every POST needs the ``X-Planner`` header and a same-origin ``Origin`` (a form
  on another site cannot post to it);
- each browser gets its own session (a random cookie): its levers are its own, a reload restores them;
- edits go through the CLI's checks; a bad value or an infeasible plan is a message on the page, and an
  unexpected failure is logged on the server's terminal and answered with a message, never a traceback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from planner.io.problems import ValidationFailed
from planner.report.atomic import OutputError
from planner.report.scenario_sheet import SheetEditError
from planner.serve.engine import Engine
from planner.serve.levers import LeverError, normalise
from planner.serve.render import page, payload

log = logging.getLogger("planner.serve")
STATIC = Path(__file__).with_name("static")
MAX_BODY = 256 * 1024
MAX_SESSIONS = 1000
SESSION_IDLE_S = 12 * 3600
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class ServeError(Exception):
    """The server cannot start (port taken, address not available)."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Sessions:
    """Per-browser lever states (a random cookie each), bounded in number and idle time."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, idle_s: float = SESSION_IDLE_S):
        self._d: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self._lock = threading.Lock()
        self.max, self.idle = max_sessions, idle_s

    def get(self, sid: str | None) -> dict:
        with self._lock:
            hit = self._d.get(sid or "")
            if hit is None or time.monotonic() - hit[0] > self.idle:
                return {}
            return hit[1]

    def put(self, sid: str | None, state: dict) -> None:
        if not sid:
            return
        with self._lock:
            self._d[sid] = (time.monotonic(), state)
            self._d.move_to_end(sid)
            while len(self._d) > self.max:
                self._d.popitem(last=False)


@dataclass
class Guard:
    """ASGI middleware: host check (loopback), token (other hosts), POST origin check, security headers."""

    app: Any
    token: str | None
    allowed_hosts: set[str] | None
    token_cookie: str

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        req = Request(scope)
        host = req.headers.get("host", "").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return await _refuse(scope, receive, send, 403, f"This server answers only to {sorted(self.allowed_hosts)[0]} "
                                 "(the Host header names another address).")
        if self.token is not None:
            given = (req.query_params.get("token") or req.headers.get("x-planner-token")
                     or req.cookies.get(self.token_cookie) or "")
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                return await _refuse(scope, receive, send, 403, "This planner server needs its access token: open "
                                     "the address it printed when it started (it ends in ?token=…).")
        if req.method == "POST":
            origin = req.headers.get("origin")
            if req.headers.get("x-planner") != "1" or (origin and urlsplit(origin).netloc.lower() != host):
                return await _refuse(scope, receive, send, 403, "Refused: requests must come from the planner page "
                                     "itself.")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                            (b"cache-control", b"no-store")]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


async def _refuse(scope, receive, send, status: int, text: str) -> None:
    await PlainTextResponse(text + "\n", status_code=status)(scope, receive, send)


async def _json_body(req: Request) -> dict:
    if int(req.headers.get("content-length") or 0) > MAX_BODY:
        raise LeverError(f"request too large (more than {MAX_BODY // 1024} kB)")
    raw = await req.body()
    if len(raw) > MAX_BODY:
        raise LeverError(f"request too large (more than {MAX_BODY // 1024} kB)")
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LeverError(f"the request is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LeverError("the request must be a JSON object")
    return data


def make_app(engine: Engine, token: str | None = None, port: int = 0, loopback: bool = True) -> Starlette:
    """The ASGI app for one engine; ``token`` None means no token; ``loopback``: only loopback Host headers."""
    sessions = Sessions()
    sid_cookie, token_cookie = f"planner_session_{port}", f"planner_token_{port}"
    allowed = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"} if loopback else None
    note = " · access by token" if token else ""

    def _sid(req: Request) -> str | None:
        return req.cookies.get(sid_cookie)

    def remember(req: Request, state: Any) -> None:
        """This browser's levers as it set them (two forms of one edit share a cached view, not a session)."""
        with contextlib.suppress(LeverError):  # a malformed state is not remembered
            sessions.put(_sid(req), normalise(state, engine.levers))

    async def index(req: Request) -> Response:
        sid = _sid(req) or secrets.token_urlsafe(18)
        state = sessions.get(sid)
        v = await run_in_threadpool(engine.view, state) if engine.interactive else None
        html = page(engine, v, token_note=note, state=state)
        resp = HTMLResponse(html)
        resp.set_cookie(sid_cookie, sid, httponly=True, samesite="strict", path="/")
        if token and req.query_params.get("token"):
            resp.set_cookie(token_cookie, token, httponly=True, samesite="strict", path="/")
        return resp

    def _error(msg: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status)

    async def _state(req: Request) -> tuple[dict, int]:
        data = await _json_body(req)
        seq = data.get("seq", 0)
        return data.get("state") or {}, seq if isinstance(seq, int) else 0

    async def api_view(req: Request) -> Response:
        try:
            state, seq = await _state(req)
            if not engine.interactive:
                return _error("this plan is too big for interactive use: run the command the page shows", 409)
            v = await run_in_threadpool(engine.view, state)
            remember(req, state)
            return JSONResponse(payload(engine, v, seq))
        except LeverError as exc:
            return _error(str(exc))
        except Exception as exc:  # never a traceback to the page; the terminal gets it
            log.exception("view failed")
            return _error(f"internal error: {type(exc).__name__}: {exc}", 500)

    async def api_explain(req: Request) -> Response:
        try:
            state, seq = await _state(req)
            if not engine.interactive:
                return _error("this plan is too big for interactive use", 409)
            v = await run_in_threadpool(engine.explain, state)
            out = payload(engine, v, seq)
            out["pending"] = v.pending
            return JSONResponse(out)
        except LeverError as exc:
            return _error(str(exc))
        except Exception as exc:
            log.exception("explain failed")
            return _error(f"internal error: {type(exc).__name__}: {exc}", 500)

    async def api_commands(req: Request) -> Response:
        """The --set texts for a state, checked but not solved (the page of a plan too big to re-solve)."""
        try:
            state, seq = await _state(req)
            v = await run_in_threadpool(engine.view, state)
            remember(req, state)
            full = payload(engine, v, seq)
            return JSONResponse({**full, "panels": {k: full["panels"][k] for k in ("command", "messages")},
                                 "pending": ""})
        except LeverError as exc:
            return _error(str(exc))
        except Exception as exc:
            log.exception("commands failed")
            return _error(f"internal error: {type(exc).__name__}: {exc}", 500)

    async def api_report(req: Request) -> Response:
        try:
            state, _ = await _state(req)
            if not engine.interactive:
                return _error("this plan is too big to solve here: run the command the page shows", 409)
            name, data = await run_in_threadpool(engine.report, state)
        except LeverError as exc:
            return _error(str(exc))
        except ValidationFailed as exc:
            return _error("; ".join(p.render() for p in exc.problems))
        except Exception as exc:
            log.exception("report failed")
            return _error(f"the report could not be written: {type(exc).__name__}: {exc}", 500)
        return Response(data, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(name)}"})

    async def api_save(req: Request) -> Response:
        try:
            data = await _json_body(req)
            state = data.get("state") or {}
            to_input = data.get("to_input") is True
            saved = await run_in_threadpool(engine.save_scenario, state, str(data.get("name") or ""), to_input)
        except (LeverError, SheetEditError, OutputError) as exc:
            return _error(str(exc))
        except ValidationFailed as exc:
            return _error("; ".join(p.render() for p in exc.problems))
        except Exception as exc:
            log.exception("save failed")
            return _error(f"the scenario could not be saved: {type(exc).__name__}: {exc}", 500)
        return JSONResponse({"ok": True, "path": str(saved.path), "name": saved.name, "rows": saved.rows,
                             "command": saved.command,
                             "message": f"Saved scenario {saved.name!r} ({saved.rows} row{'s' if saved.rows != 1 else ''})"
                                        f" to {saved.path}."})

    routes = [Route("/", index), Route("/api/view", api_view, methods=["POST"]),
              Route("/api/explain", api_explain, methods=["POST"]),
              Route("/api/commands", api_commands, methods=["POST"]),
              Route("/api/report", api_report, methods=["POST"]), Route("/api/save", api_save, methods=["POST"]),
              Mount("/static", app=StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes)
    return Guard(app, token, allowed, token_cookie)  # type: ignore[return-value]


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        what = "is in use" if exc.errno in (98, 48, 10048) else f"cannot be used ({exc.strerror or exc})"
        raise ServeError(f"{host}:{port} {what}; choose another with --port (0 picks a free one)") from exc
    sock.listen(128)
    return sock


def serve(path: Path, engine: Engine, host: str = "127.0.0.1", port: int = 8050, echo=print,
          require_token: bool = False) -> None:
    """Listen and answer until Ctrl-C; prints the address (with the token when one is needed).

    A token is always required beyond loopback; ``require_token`` asks for one on loopback too (a machine
    shared with other users, who can all reach 127.0.0.1).
    """
    import uvicorn

    loopback = is_loopback(host)
    token = secrets.token_urlsafe(24) if (require_token or not loopback) else None
    sock = _listen(host, port)
    port = sock.getsockname()[1]
    app = make_app(engine, token=token, port=port, loopback=loopback)
    shown = host if loopback else (socket.gethostname() if host in ("0.0.0.0", "::") else host)
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    size = f"{engine.n_cols:,} LP columns"
    if engine.interactive:
        echo(f"planner serve: {path} ({size}; base plan solved, margin {engine.base.figures.get('margin') or 0:,.0f})")
    else:
        echo(f"planner serve: {path} ({size}: too big to re-solve interactively; the page composes commands)")
    echo(f"open {url}")
    if token:
        echo(("listening beyond loopback: " if not loopback else "")
             + "the token above is required for every request; share it only with the people who should see "
               "this plan")
    echo("Ctrl-C stops the server")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
