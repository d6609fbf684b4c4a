"""``clinforge serve``: an offline OpenAI-compatible server with guards, retrieval, verification and an audit log.

Modules: ``serve_config`` (YAML + flags), ``serve_app`` (FastAPI routes), ``sse_stream`` (streamed answers),
``guarded_generation`` (the assist/ guards around a backend), ``api_keys``, ``api_errors``, ``audit_log``,
``serve_metrics``, ``thread_stream`` and ``serve_runner`` (uvicorn and the SIGTERM drain).
"""
