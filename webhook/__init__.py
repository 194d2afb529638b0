"""The webhook (embedq serve): the routes QStash calls, the read API for applications, and the
operator's dashboard and admin API, in one Starlette app (embedq.webhook.app.create_app)."""
