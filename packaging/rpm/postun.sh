# accel-agent %postun ($1: 0 on erase, 1 on upgrade). As on Fedora, erasing keeps /var/lib/accel-agent
# (the event journal and saved original sysfs values) and the accel-agent user; docs/install.md says how
# to delete them.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    # An upgrade: a running agent would otherwise keep running the old binary; try-restart leaves a
    # stopped unit stopped.
    if [ "$1" -ge 1 ]; then
        systemctl try-restart accel-agent.service accel-agent-readonly.service >/dev/null 2>&1 || :
    fi
fi
exit 0
