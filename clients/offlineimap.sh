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
# offlineimap's imaplib2 matches the host against the certificate's commonName and DNS
# subjectAltNames only, never against IP subjectAltNames: asked for 127.0.0.1 it refuses even
# a valid certificate. So the loopback address is reached by its name, localhost, with
# "ipv6 = no" so the name resolves to 127.0.0.1 only (the fakes listen there, not on ::1).
host=$MAILCONFORM_IMAP_HOST
ipv6=""
if [ "$host" = 127.0.0.1 ]; then
    host=localhost
    ipv6="ipv6 = no"
fi
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
remotehost = $host
remoteport = $MAILCONFORM_IMAP_PORT
remoteuser = $MAILCONFORM_USERNAME
remotepass = $MAILCONFORM_PASSWORD
ssl = $ssl
starttls = $starttls
sslcacertfile = $MAILCONFORM_CA_FILE
readonly = True
maxconnections = 1
$ipv6
CONF
exec offlineimap -o -1 -c "$conf"
