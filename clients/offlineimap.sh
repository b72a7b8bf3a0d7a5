#!/bin/sh
# mailconform adapter for offlineimap: writes an .offlineimaprc from the MAILCONFORM_*
# environment (implicit TLS, STARTTLS or plaintext as the scenario configures the client)
# and runs one sync of the remote account into MAILCONFORM_MAILDIR.
#   mailconform run --client 'sh clients/offlineimap.sh' --features imap
set -eu
conf="$MAILCONFORM_STATE_DIR/offlineimaprc"
case "$MAILCONFORM_IMAP_SECURITY" in
    tls)      ssl=yes; starttls=no ;;
    starttls) ssl=no;  starttls=yes ;;
    *)        ssl=no;  starttls=no ;;
esac
umask 077
cat > "$conf" <<CONF
[general]
accounts = conform
metadata = $MAILCONFORM_STATE_DIR/metadata
ui = basic

[Account conform]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = $MAILCONFORM_MAILDIR
sep = /

[Repository remote]
type = IMAP
remotehost = $MAILCONFORM_IMAP_HOST
remoteport = $MAILCONFORM_IMAP_PORT
remoteuser = $MAILCONFORM_USERNAME
remotepass = $MAILCONFORM_PASSWORD
ssl = $ssl
starttls = $starttls
sslcacertfile = $MAILCONFORM_CA_FILE
readonly = True
maxconnections = 1
CONF
exec offlineimap -o -1 -c "$conf"
