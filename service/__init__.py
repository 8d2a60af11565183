"""The service front end: HTTP API, MCP, webhooks and job pages over the one JobService (DESIGN.md).

Like `bot/`, it imports the production side only through `graph.api`.
"""
