class Web:
    def __init__(self, hub):
        self.hub = hub

    async def index(self, request, t=None):
        from starlette.responses import HTMLResponse
        return HTMLResponse("<h1>dismai hub</h1>")

    async def repo_page(self, request, key, rest):
        from starlette.responses import HTMLResponse
        return HTMLResponse("<h1>repo</h1>")
