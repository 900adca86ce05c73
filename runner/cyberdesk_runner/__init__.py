"""cyberdesk-runner: run Cyberdesk workflows on a fleet of desktops."""
