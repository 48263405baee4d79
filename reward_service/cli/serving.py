"""Running the service and its setup: `rbr serve`, `rbr policy`, `rbr fetch-model`."""

from __future__ import annotations

import argparse
import logging
import sys

from reward_service.cli._common import add_settings_flags, settings_overrides
from reward_service.config import load_settings
from reward_service.errors import RBRError

__all__ = ["register"]

#: The short flags `rbr serve` has always had, beside the generated ones.
SERVE_ALIASES = {
    "policy_file": "--policy",
    "grader_model": "--model",
    "grader_heads": "--heads",
    "weights_file": "--weights",
}


def register(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser("serve", help="serve rewards over HTTP (FastAPI on uvicorn)")
    sv.add_argument("--config", help="settings file (TOML/YAML/JSON, optionally under an `rbr` key); RBR_CONFIG")
    sv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_settings_flags(sv, SERVE_ALIASES)
    sv.set_defaults(func=cmd_serve)

    p = sub.add_parser("policy", help="validate a policy file and print its hash")
    p.add_argument("file", nargs="?", help="policy YAML (default: the built-in policy)")
    p.set_defaults(func=cmd_policy)

    m = sub.add_parser("fetch-model", help="fetch and convert the embedded grader model")
    m.add_argument("--force", action="store_true", help="fetch again even if cached")
    m.set_defaults(func=cmd_fetch_model)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from reward_service.server.app import create_app

    settings = load_settings(args.config, **settings_overrides(args))
    failure: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_load_failure(e: BaseException) -> None:
        failure.append(e)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_load_failure=on_load_failure)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=args.log_level, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    logging.getLogger("rbr").setLevel(logging.INFO)
    print(
        f"rbr serve: http://{settings.host}:{settings.port} (models load in the background; GET /readyz)",
        file=sys.stderr,
        flush=True,
    )
    server.run()
    if failure:
        e = failure[0]
        if isinstance(e, RBRError):
            raise e
        print(f"rbr serve: loading the models failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from propositions import load_policy

    policy = load_policy(args.file)
    print(f"{policy.source}: valid. name={policy.name} hash={policy.hash}")
    print(f"  {len(policy.propositions)} propositions, {len(policy.derived)} derived")
    for rt in policy.response_types:
        n_props, n_feats = len(policy.required_propositions(rt)), len(policy.feature_names(rt))
        print(f"  {rt}: grades {n_props} propositions, {n_feats} features")
    return 0


def cmd_fetch_model(args: argparse.Namespace) -> int:
    from reward_service.paths import fetch_embedded_model

    print(fetch_embedded_model(force=args.force))
    return 0
