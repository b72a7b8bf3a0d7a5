#!/bin/sh
# mailconform adapter for curl: a minimal one-way INBOX sync made of curl calls
# (UID SEARCH ALL, then one UID FETCH per message into MAILCONFORM_MAILDIR/INBOX/cur).
#   mailconform run --client 'sh clients/curl-sync.sh' --features imap
set -eu
case "$MAILCONFORM_IMAP_SECURITY" in
    tls)      url="imaps://$MAILCONFORM_IMAP_HOST:$MAILCONFORM_IMAP_PORT"; tls="" ;;
    starttls) url="imap://$MAILCONFORM_IMAP_HOST:$MAILCONFORM_IMAP_PORT"; tls="--ssl-reqd" ;;
    *)        url="imap://$MAILCONFORM_IMAP_HOST:$MAILCONFORM_IMAP_PORT"; tls="" ;;
esac
# Credentials go in a curl config file (mode 0600), not on the command line.
umask 077
conf="$MAILCONFORM_STATE_DIR/curlrc"
escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
printf 'user = "%s:%s"\n' "$(escape "$MAILCONFORM_USERNAME")" "$(escape "$MAILCONFORM_PASSWORD")" > "$conf"
inbox="$MAILCONFORM_MAILDIR/INBOX"
mkdir -p "$inbox/cur" "$inbox/new" "$inbox/tmp"
search=$(curl --silent --show-error --max-time 20 -K "$conf" --cacert "$MAILCONFORM_CA_FILE" $tls \
         "$url/INBOX" -X 'UID SEARCH ALL')
uids=$(printf '%s\n' "$search" | tr -d '\r' | sed -n 's/^\* SEARCH//p')
for uid in $uids; do
    name="$uid.curl"
    [ -e "$inbox/cur/$name" ] && continue
    curl --silent --show-error --max-time 20 -K "$conf" --cacert "$MAILCONFORM_CA_FILE" $tls \
         "$url/INBOX;UID=$uid" -o "$inbox/tmp/$name"
    mv "$inbox/tmp/$name" "$inbox/cur/$name"
done
