"""The local, HiDream-compatible img2svg service (`img2svg serve`).

`img2svg.service.app.create_app` builds the ASGI app; `img2svg.service.embedded` starts it as a
child process. Nothing is imported here so that starting a child does not load the engine.
"""
