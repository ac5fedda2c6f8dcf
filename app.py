"""Serve the chat UI in the browser: ``python app.py`` then open http://127.0.0.1:7860.

Settings come from QA_* environment variables and .env (see qa/settings.py); --host and --port override
QA_HOST and QA_PORT. Off loopback it starts only with users to sign in (QA_USERS_FILE, see `qa users`)
or QA_ALLOW_ANONYMOUS=true. The OpenAI-compatible /v1 endpoint (qa/openai_api.py) is served on the same port
(settings.ui.serve_api: a loopback host, or QA_API_KEY set). The page is served at once and the engine opens
in the background (questions wait for it); the corpus is ingested first when the store is empty or missing.
Analytics, share links and every other outside call stay off.
"""

from __future__ import annotations

import argparse
import logging
import sys

from qa.settings import apply_process_defaults

apply_process_defaults()  # before the libraries are imported

import qa  # noqa: E402


def open_engine(settings: qa.Settings) -> qa.QAEngine:
    """Open the store, ingesting the corpus first when it is missing or empty."""
    try:
        return qa.QAEngine(settings)
    except qa.StoreError as exc:
        logging.getLogger("app").info("the store is not ready (%s): ingesting %s", exc, settings.corpus_dir)
    from qa.embeddings import make_embedding

    model = make_embedding(settings)  # loaded once, shared by the ingestion and the engine
    report = qa.ingest(settings, embed_model=model)
    print(report.summary(), file=sys.stderr)
    return qa.QAEngine(settings, embed_model=model)


def quiet_libraries() -> None:
    for noisy in ("httpx", "bm25s", "chromadb"):  # after the imports, which set their own levels
        logging.getLogger(noisy).setLevel(logging.WARNING)


def start_engine(settings: qa.Settings) -> qa.QAEngine:
    """The engine, open and warmed up (run in the loader thread while Gradio imports and the page is served)."""
    engine = open_engine(settings)
    quiet_libraries()
    from qa.ui import warm_up

    warm_up(engine)
    return engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat with the news corpus in the browser.")
    parser.add_argument("--host", help="address to bind (QA_HOST, default 127.0.0.1; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, help="port (QA_PORT, default 7860)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = qa.load_settings(**overrides)
        from qa.access import exposure_check

        warning = exposure_check(settings)  # before the slow engine start: no sign-in off loopback is refused
        if warning:
            print(warning, file=sys.stderr)
    except qa.QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    from qa.loader import EngineLoader

    # The page is served first, then the models and the index load in a thread; questions asked meanwhile
    # wait for the engine (the page says so). Loading them during Gradio's import instead gains nothing:
    # both are Python work under one GIL, and the page came 2 s later (benchmarks/startup.py).
    loader = EngineLoader(lambda: start_engine(settings))
    from qa import ui

    quiet_libraries()
    demo = ui.build_app(loader, settings)
    try:
        ui.launch(demo, settings, prevent_thread_lock=True)
    except OSError as exc:  # port taken or address not available
        print(f"error: cannot serve on {settings.ui.host}:{settings.ui.port} ({exc}); set QA_PORT or --port", file=sys.stderr)
        return 1
    loader.start()
    print(f"open http://{settings.ui.host}:{settings.ui.port} (the index is loading)", file=sys.stderr)
    try:
        engine = loader.result()
    except qa.QAError as exc:  # a bad or unreadable store: one line, and the server stops
        print(f"error: {exc}", file=sys.stderr)
        demo.close()
        return 1
    except KeyboardInterrupt:
        demo.close()
        return 130
    print(f"answer mode: {engine.mode_label}; ready in {loader.seconds:.1f} s", file=sys.stderr)
    engine.watch(settings.refresh_seconds)
    if settings.ui.serve_api:
        print(f"OpenAI-compatible API: http://{settings.ui.host}:{settings.ui.port}/v1", file=sys.stderr)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
