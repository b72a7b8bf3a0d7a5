#!/bin/sh
# mailconform adapter for msmtp: submits every *.eml file of MAILCONFORM_OUTBOX with
# `msmtp -t --read-envelope-from` (recipients from To/Cc/Bcc, Bcc removed by msmtp, sender
# from From), implicit TLS, STARTTLS or plaintext as the scenario configures the client, the
# run's CA as the only trusted one. A file is deleted only when msmtp exits 0.
#   mailconform run --client 'sh clients/msmtp-send.sh' --features smtp --scenario 'smtp.*'
set -u
case "${MAILCONFORM_SMTP_SECURITY:-starttls}" in
    tls)      tls=on;  starttls=off ;;
    starttls) tls=on;  starttls=on ;;
    *)        tls=off; starttls=off ;;
esac
# The config file (mode 0600) holds no password: msmtp reads it from the environment
# through passwordeval, so it is neither on a command line nor on disk.
umask 077
conf="$MAILCONFORM_STATE_DIR/msmtprc"
cat > "$conf" <<CONF
defaults
logfile -
syslog off

account conform
host $MAILCONFORM_SMTP_HOST
port $MAILCONFORM_SMTP_PORT
domain localhost
timeout 20
tls $tls
tls_starttls $starttls
tls_trust_file $MAILCONFORM_CA_FILE
auth on
user $MAILCONFORM_USERNAME
passwordeval printf '%s' "\$MAILCONFORM_PASSWORD"
CONF
status=0
for file in "$MAILCONFORM_OUTBOX"/*.eml; do
    [ -e "$file" ] || continue
    if msmtp -C "$conf" -a conform -t --read-envelope-from < "$file"; then
        rm -f "$file"
    else
        code=$?
        echo "msmtp-send: $(basename "$file") not sent (msmtp exit $code); kept in the outbox" >&2
        status=$code
    fi
done
exit $status
