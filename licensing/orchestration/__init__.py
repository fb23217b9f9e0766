"""What ties storage, rules and plugins together over time: the service the API and command line
call, roster syncs, license updates, notifications and webhooks, the scheduler and its jobs, and
the host object handed to plugins.
"""
