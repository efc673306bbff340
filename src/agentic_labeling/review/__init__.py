"""The review web app (`alabel serve review`): a page where a person accepts, rejects and
relabels auto-labels, keyboard first, with "more like this" bulk decisions.

It holds no data of its own: every read and every decision is a RegistryService RPC
(`gateway`); thumbnails and overlays are drawn here from the registry's masks and the images
the registry stored (`rendering`); `app` maps HTTP routes to both; `server` runs it on uvicorn.
"""
