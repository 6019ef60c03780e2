"""``crowd demo``: a whole labelling cycle against a running service, over HTTP.

:mod:`crowd.demo.scenarios` builds what the crowd will do (a simulated crowd of workers with
different skill, spammers included, or a replay of a real dataset); :mod:`crowd.demo.run`
plays it through :class:`~crowd.client.RequesterClient` and
:class:`~crowd.client.WorkerClient`; :mod:`crowd.demo.report` scores the outcome against the
truth. The command itself (starting the service) is :mod:`crowd.cli.demo`.
"""
