#!/bin/sh
# mailconform adapter for swaks: submits every *.eml file of MAILCONFORM_OUTBOX with one
# swaks run each. swaks has no `sendmail -t`: this script takes the envelope from the
# message's header (recipients: every address in To, Cc and Bcc; sender: the From address)
# and removes the Bcc field from what is sent. TLS as the scenario configures the client
# (--tls-on-connect, --tls = STARTTLS required, or none), certificates verified against the
# run's CA only. A file is deleted only when swaks exits 0.
#   mailconform run --client 'sh clients/swaks-send.sh' --features smtp --scenario 'smtp.*'
set -u
case "${MAILCONFORM_SMTP_SECURITY:-starttls}" in
    tls)      set -- --tls-on-connect --tls-verify --tls-ca-path "$MAILCONFORM_CA_FILE" ;;
    starttls) set -- --tls --tls-verify --tls-ca-path "$MAILCONFORM_CA_FILE" ;;
    *)        set -- ;;
esac
# Credentials through swaks's SWAKS_OPT_* environment variables, never on the command line.
SWAKS_OPT_auth_user=$MAILCONFORM_USERNAME
SWAKS_OPT_auth_password=$MAILCONFORM_PASSWORD
export SWAKS_OPT_auth_user SWAKS_OPT_auth_password
umask 077
work="$MAILCONFORM_STATE_DIR/swaks"
mkdir -p "$work"

# The unfolded header fields named $1 (a regular expression, lower case), one per line.
fields() {
    tr -d '\r' < "$2" | awk -v names="$1" '
        /^$/ { exit }
        /^[ \t]/ { if (keep) value = value " " $0; next }
        { if (keep) print value; keep = 0
          split($0, part, ":"); name = tolower(part[1])
          if (name ~ "^(" names ")$") { keep = 1; value = substr($0, length(part[1]) + 2) } }
        END { if (keep) print value }'
}
# The addresses in some header text: user@domain, with or without <>.
addresses() {
    grep -o '[^][ <>,;:"()]*@[^][ <>,;:"()]*' | awk '!seen[tolower($0)]++'
}

status=0
for file in "$MAILCONFORM_OUTBOX"/*.eml; do
    [ -e "$file" ] || continue
    name=$(basename "$file")
    to=$(fields 'to|cc|bcc' "$file" | addresses | paste -sd, -)
    from=$(fields 'from' "$file" | addresses | head -n 1)
    if [ -z "$to" ] || [ -z "$from" ]; then
        echo "swaks-send: $name has no recipient or no From address; kept in the outbox" >&2
        status=1
        continue
    fi
    # the message without its Bcc field (and its continuation lines)
    awk 'BEGIN { head = 1 }
         head && /^\r?$/ { head = 0 }
         head && /^[ \t]/ { if (!drop) print; next }
         head { drop = (tolower($0) ~ /^bcc[ \t]*:/) }
         !drop || !head { print }' "$file" > "$work/data"
    if swaks --server "$MAILCONFORM_SMTP_HOST" --port "$MAILCONFORM_SMTP_PORT" --ehlo localhost "$@" \
             --auth --from "$from" --to "$to" --data "@$work/data" --timeout 20 --hide-send; then
        rm -f "$file"
    else
        code=$?
        echo "swaks-send: $name not sent (swaks exit $code); kept in the outbox" >&2
        status=$code
    fi
done
rm -f "$work/data"
exit $status
