/*
 * The C interface of fix_session.tick_core's inbox, for fix_session.quickfix_feed: the
 * QuickFIX thread pushes each raw application message without the GIL. Exported as the
 * capsule "fix_session.tick_core._inbox_api".
 */
#ifndef MDFEED_TICK_CORE_API_H
#define MDFEED_TICK_CORE_API_H

#include <stddef.h>
#include <stdint.h>

#define TICK_CORE_INBOX_CAPSULE "fix_session.tick_core._inbox_api"

typedef struct {
    char *data;
    size_t len;
    int64_t ingest_ns;
} InboxMessage;

typedef struct {
    /* The TickCore type: what `push` takes, checked by the caller. */
    void *type;
    /* 1 when the core's inbox is open (push needs it), else 0. */
    int (*ready)(void *core);
    /* Copy one raw message into the core's inbox (stamped with the wall clock), waiting
     * while it is full; 0, or -1 when the inbox is stopped (the message is dropped). Call
     * without the GIL; `core` is a TickCore whose inbox is open. */
    int (*push)(void *core, const char *data, size_t len);
} TickCoreInboxApi;

#endif
