# accel-agent %post ($1: 1 on install, 2 on upgrade). Creates the service user and the control group and
# the state and runtime directories. It never enables or starts a unit: which one runs is the admin's
# decision (docs/install.md). Safe on hosts where systemd is not PID 1.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers /usr/lib/sysusers.d/accel-agent.conf || :
elif command -v useradd >/dev/null 2>&1; then
    getent group accel-agent >/dev/null || groupadd --system accel-agent
    getent passwd accel-agent >/dev/null ||
        useradd --system --gid accel-agent --home-dir /var/lib/accel-agent --no-create-home \
            --shell /sbin/nologin --comment "accel-agent hardware health agent" accel-agent
    if getent group adm >/dev/null; then usermod --append --groups adm accel-agent; fi
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/accel-agent.conf || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
