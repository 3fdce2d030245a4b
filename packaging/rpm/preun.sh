# accel-agent %preun ($1: 0 on erase, 1 on upgrade): stop the agent before its files go away.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl stop accel-agent.service accel-agent-readonly.service >/dev/null 2>&1 || :
fi
exit 0
