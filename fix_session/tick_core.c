/*
 * fix_session.tick_core: the ingest's native core. Raw FIX W and X messages in, per-symbol
 * books kept, encoded Ticks out, with no Python object per entry or per field.
 *
 * Why native: the compiled-Python decoder and normalizer cost ~14 us and ~3-10 us per
 * 20-entry X on this machine, against ~34 us for the whole bare QuickFIX session; the
 * ingest's goal (>= 0.66 of bare QuickFIX) leaves mdfeed ~18 us per message for everything.
 * The measurement is in the README ("Why a native core").
 *
 * What it does is exactly what fix_spec.md_decoder.MdDecoder (verify_checksum=False)
 * followed by fix_session.normalizer.BookNormalizer.on_message do, for the messages it
 * accepts; it accepts only the common shape and leaves everything else, untouched, to that
 * Python path (on_raw returns RAW_FALLBACK before any book changes): a malformed field, a
 * value outside the plain decimal forms, an entry that fails the normalizer's checks, a
 * non-ASCII symbol, a message type other than W and X. The Python path then raises its
 * precise errors, or applies the message through `apply`, which uses the same books.
 *
 * Layout: TickCore holds a symbol table (open addressing on the symbol's UTF-8 bytes); a
 * slot's Book is created when a message first touches the symbol. Each side of a book is
 * an array of at most `capacity` levels, best first, updated as the core's book model says
 * (price, position or entry_id: docs/book-models.md); the best level is the first, read
 * without a scan. After every message each touched book is checked (crossed, locked); a
 * fault of any kind marks the book invalid, and every tick of it carries book_invalid until
 * its next snapshot. Ticks are written into
 * one output buffer, in order, as [slot, length, bytes]; `take` moves them into lists,
 * `flush` groups them per symbol into TickBatch record values (mdfeed.kernel.tick_records).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "tick_core_api.h"

#define ABSENT INT64_MIN
#define K_BID 0
#define K_OFFER 1
#define K_TRADE 2
#define K_OTHER (-1)
#define A_NEW 0
#define A_CHANGE 1
#define A_DELETE 2
#define DAY_NS 86400000000000LL
#define E8 100000000LL

/* Tag codes, as fix_spec.md_decoder's _Level tables hold them. */
#define C_OPAQUE (-1)
#define C_NOT_HERE (-2)
#define C_KNOWN_ELSEWHERE (-3)
#define C_ENCLOSING (-4)
#define C_OTHER 16
#define MAX_CODE 511 /* the seen-bit sets below hold 512 codes */

#define H_SEQ_NUM 0
#define H_SENDING 1
#define B_REQ_ID 0
#define B_SYMBOL 1
#define B_TEXT 2
#define B_REJ_REASON 3
#define B_ENTRIES 4
#define E_ACTION 0
#define E_KIND 1
#define E_SYMBOL 2
#define E_PX 3
#define E_SIZE 4
#define E_TIME 5
#define E_POSITION 6
#define E_LEVEL 7
#define E_ENTRY_ID 8
#define E_REF_ID 9

/* on_raw's answers. */
#define RAW_FALLBACK 0
#define RAW_X 1
#define RAW_W 2
#define RAW_Y 3

#define QUOTE_TICK 1
#define TRADE_TICK 2
#define MAX_ENTRIES 4096

typedef struct {
    uint64_t w[8];
} Bits;

static inline void bits_clear(Bits *b) { memset(b, 0, sizeof(*b)); }
static inline int bits_test(const Bits *b, int code) { return (int)((b->w[code >> 6] >> (code & 63)) & 1u); }
static inline void bits_set(Bits *b, int code) { b->w[code >> 6] |= (uint64_t)1 << (code & 63); }
static int bits_cover(const Bits *seen, const Bits *required)
{
    for (int k = 0; k < 8; k++)
        if ((seen->w[k] & required->w[k]) != required->w[k])
            return 0;
    return 1;
}

typedef struct {
    int32_t *table;
    Py_ssize_t size;
    Bits required;
    long first_tag;
} Level;

static inline int level_code(const Level *level, long tag)
{
    if (tag >= 0 && tag < level->size)
        return level->table[tag];
    return C_NOT_HERE;
}

/* Book models (docs/book-models.md): how an X's entries name the level they update. */
#define M_PRICE 0
#define M_POSITION 1
#define M_ENTRY_ID 2

/* Faults: a book that cannot be right (docs/book-models.md); counted per reason. */
#define F_MISSING_LEVEL 0
#define F_POSITION_GAP 1
#define F_BEYOND_DEPTH 2
#define F_NO_POSITION 3
#define F_DUPLICATE_ID 4
#define F_NO_ENTRY_ID 5
#define F_CROSSED 6
#define F_LOCKED 7
#define N_FAULTS 8
static const char *const FAULT_NAMES[N_FAULTS] = {
    "missing_level", "position_gap", "beyond_depth", "no_position",
    "duplicate_id",  "no_entry_id",  "crossed",      "locked",
};

typedef struct {
    int64_t px;
    int64_t size;
    uint64_t id; /* entry_id model: the hash of MDEntryID's bytes; 0 otherwise */
} BookLevel;

/* One side, best first (bids by falling price, offers by rising price; the position
 * model in the venue's order), at most the core's book capacity. */
typedef struct {
    BookLevel *levels; /* capacity levels, allocated with the book */
    Py_ssize_t count;
    int trimmed; /* a level was trimmed since the last snapshot */
} Side;

typedef struct {
    Side bids, asks;
    int64_t pub_bid_px, pub_bid_size, pub_ask_px, pub_ask_size;
    int invalid, pub_invalid;
    BookLevel *pub_depth; /* with depth: the levels last published, bids then asks */
    Py_ssize_t pub_bids, pub_asks;
    int report; /* the fault that made the book invalid, until take_faults reports it; -1 */
    int has_last;
    int64_t last_px, last_size;
    uint64_t seq;
    uint64_t mark;
} Book;

typedef struct {
    char *name; /* UTF-8 bytes, NUL-terminated copy */
    Py_ssize_t len;
    uint64_t hash;
    PyObject *key;   /* bytes: the Kafka key */
    PyObject *text;  /* str: the symbol */
    char *head;      /* the Tick's encoded field 1 */
    Py_ssize_t head_len;
    Book *book;      /* NULL until a message touches the symbol */
    int allowed;
    int held;        /* increments' ticks are held back until the next snapshot */
    /* flush's per-slot scratch */
    Py_ssize_t out_size;
    char *out_at;
    PyObject *out_obj;
} Slot;

typedef struct {
    int action, kind;
    const char *sym;
    Py_ssize_t sym_len;
    int64_t px, size, time_ns;
    int64_t position; /* MDEntryPositionNo, else MDPriceLevel; ABSENT when neither */
    int64_t level;    /* MDPriceLevel as read (the raw decoder's scratch) */
    uint64_t id, ref; /* hashes of MDEntryID and MDEntryRefID; 0 when absent */
} Entry;

typedef struct {
    PyObject_HEAD
    int has_layout;
    char *prefix;
    Py_ssize_t prefix_len;
    Level header, body_w, body_x, entry_w, entry_x;
    unsigned char kind_chars[256];
    unsigned char action_chars[256];
    Slot *slots;       /* open addressing, capacity a power of two */
    Py_ssize_t capacity;
    Py_ssize_t used;
    Py_ssize_t *order; /* slot indexes in creation order */
    int restricted;
    Entry *entries;
    Py_ssize_t entry_capacity;
    Py_ssize_t *touched;
    uint64_t message_count;
    /* output: [uint32 slot][uint32 length][bytes]... */
    char *out;
    Py_ssize_t out_len, out_capacity;
    Py_ssize_t out_ticks;
    Py_ssize_t *flush_order;
    /* the last W applied by on_raw */
    Py_ssize_t last_slot;
    /* The inbox: raw messages pushed by the QuickFIX thread (fix_session.quickfix_feed),
     * without the GIL, under in_lock; drained by the event loop. */
    pthread_mutex_t in_lock;
    pthread_cond_t in_room;
    int in_ready;
    InboxMessage *ring;
    Py_ssize_t ring_capacity, ring_head, ring_count;
    int wake_fd;
    int wake_pending;
    int in_stopped;
    long long inbox_waits, dropped_on_stop, pushed;
    /* books */
    int model;              /* M_PRICE, M_POSITION or M_ENTRY_ID */
    Py_ssize_t book_capacity; /* levels kept per side */
    int locked_ok;          /* a locked book (best bid = best offer) is legal */
    Py_ssize_t depth;       /* price levels a side each quote tick carries; 0: top only */
    BookLevel *depth_scratch; /* 2 * depth levels: a book's view being published */
    long long faults[N_FAULTS], levels_trimmed, faults_pending;
    /* counters */
    long long snapshots, increments, n_entries, quotes_out, trades_out, ticks_suppressed;
} TickCore;

/* ---- symbol table ---------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, Py_ssize_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

static Py_ssize_t varint_len(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline char *put_varint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static int grow_table(TickCore *self);

/* The slot of a symbol's UTF-8 bytes; -1 if there is none (create = 0) or on error. */
static Py_ssize_t find_slot(TickCore *self, const char *s, Py_ssize_t n, int create, int allowed)
{
    uint64_t h = hash_bytes(s, n);
    Py_ssize_t mask = self->capacity - 1;
    Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)mask);
    for (;;) {
        Slot *slot = &self->slots[i];
        if (slot->name == NULL)
            break;
        if (slot->hash == h && slot->len == n && memcmp(slot->name, s, (size_t)n) == 0)
            return i;
        i = (i + 1) & mask;
    }
    if (!create)
        return -1;
    if ((self->used + 1) * 2 > self->capacity) {
        if (grow_table(self) < 0)
            return -2;
        return find_slot(self, s, n, create, allowed);
    }
    Slot *slot = &self->slots[i];
    memset(slot, 0, sizeof(*slot));
    slot->name = PyMem_Malloc((size_t)n + 1);
    slot->head_len = n ? 1 + varint_len((uint64_t)n) + n : 0;
    slot->head = PyMem_Malloc((size_t)slot->head_len + 1);
    if (slot->name == NULL || slot->head == NULL) {
        PyMem_Free(slot->name);
        PyMem_Free(slot->head);
        slot->name = NULL;
        PyErr_NoMemory();
        return -2;
    }
    memcpy(slot->name, s, (size_t)n);
    slot->name[n] = 0;
    slot->len = n;
    slot->hash = h;
    if (n) {
        char *p = slot->head;
        *p++ = 0x0A;
        p = put_varint(p, (uint64_t)n);
        memcpy(p, s, (size_t)n);
    }
    slot->key = PyBytes_FromStringAndSize(s, n);
    slot->text = PyUnicode_DecodeUTF8(s, n, "strict");
    if (slot->key == NULL || slot->text == NULL) {
        Py_CLEAR(slot->key);
        Py_CLEAR(slot->text);
        PyMem_Free(slot->name);
        PyMem_Free(slot->head);
        slot->name = NULL;
        return -2;
    }
    slot->allowed = allowed;
    self->order[self->used++] = i;
    return i;
}

static int grow_table(TickCore *self)
{
    Py_ssize_t old_capacity = self->capacity;
    Slot *old = self->slots;
    Py_ssize_t *old_order = self->order;
    Py_ssize_t used = self->used;
    Py_ssize_t capacity = old_capacity * 2;
    Slot *slots = PyMem_Calloc((size_t)capacity, sizeof(Slot));
    Py_ssize_t *order = PyMem_Calloc((size_t)capacity, sizeof(Py_ssize_t));
    Py_ssize_t *touched = PyMem_Realloc(self->touched, (size_t)capacity * sizeof(Py_ssize_t));
    Py_ssize_t *flush_order = PyMem_Realloc(self->flush_order, (size_t)capacity * sizeof(Py_ssize_t));
    if (touched)
        self->touched = touched;
    if (flush_order)
        self->flush_order = flush_order;
    if (!slots || !order || !touched || !flush_order) {
        PyMem_Free(slots);
        PyMem_Free(order);
        PyErr_NoMemory();
        return -1;
    }
    /* Old slot indexes are written in the output buffer: rehash in creation order, then
     * rewrite the buffer's slot numbers. The buffer is empty between messages except for
     * pending ticks, which are remapped below. */
    Py_ssize_t *remap = PyMem_Calloc((size_t)old_capacity, sizeof(Py_ssize_t));
    if (!remap) {
        PyMem_Free(slots);
        PyMem_Free(order);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t mask = capacity - 1;
    for (Py_ssize_t k = 0; k < used; k++) {
        Slot *s = &old[old_order[k]];
        Py_ssize_t i = (Py_ssize_t)(s->hash & (uint64_t)mask);
        while (slots[i].name != NULL)
            i = (i + 1) & mask;
        slots[i] = *s;
        order[k] = i;
        remap[old_order[k]] = i;
    }
    for (Py_ssize_t at = 0; at < self->out_len;) {
        uint32_t slot, len;
        memcpy(&slot, self->out + at, 4);
        memcpy(&len, self->out + at + 4, 4);
        slot = (uint32_t)remap[slot];
        memcpy(self->out + at, &slot, 4);
        at += 8 + (Py_ssize_t)len;
    }
    if (self->last_slot >= 0)
        self->last_slot = remap[self->last_slot];
    PyMem_Free(remap);
    PyMem_Free(old);
    PyMem_Free(old_order);
    self->slots = slots;
    self->order = order;
    self->capacity = capacity;
    return 0;
}

/* ---- books ------------------------------------------------------------------------ */

static Book *book_of(TickCore *self, Py_ssize_t slot)
{
    Slot *s = &self->slots[slot];
    if (s->book == NULL) {
        Book *b = PyMem_Calloc(1, sizeof(Book));
        BookLevel *levels = PyMem_Calloc((size_t)self->book_capacity * 2, sizeof(BookLevel));
        if (b == NULL || levels == NULL) {
            PyMem_Free(b);
            PyMem_Free(levels);
            PyErr_NoMemory();
            return NULL;
        }
        b->bids.levels = levels;
        b->asks.levels = levels + self->book_capacity;
        b->report = -1;
        if (self->depth) {
            b->pub_depth = PyMem_Calloc((size_t)self->depth * 2, sizeof(BookLevel));
            if (b->pub_depth == NULL) {
                PyMem_Free(levels);
                PyMem_Free(b);
                PyErr_NoMemory();
                return NULL;
            }
        }
        s->book = b;
    }
    return s->book;
}

static void book_free(Book *b)
{
    if (b != NULL) {
        PyMem_Free(b->bids.levels); /* both sides' levels are one allocation */
        PyMem_Free(b->pub_depth);
        PyMem_Free(b);
    }
}

/* A fault of the book in `slot`: counted, the book marked invalid until its next snapshot,
 * the first reason kept for take_faults. */
static void book_fault(TickCore *self, Book *b, int reason)
{
    self->faults[reason]++;
    if (!b->invalid) {
        b->invalid = 1;
        if (b->report < 0)
            self->faults_pending++;
        b->report = reason;
    }
}

/* Whether price a is strictly better than price b on a side. */
static inline int better(int bid, int64_t a, int64_t b) { return bid ? a > b : a < b; }

/* The first index whose level is not better than px (equal_too = 0) or is worse than px
 * (equal_too = 1): where px goes, before or after the levels at its price. Binary search:
 * a side is sorted best first in the price and entry_id models. */
static Py_ssize_t side_place(const Side *side, int bid, int64_t px, int equal_too)
{
    Py_ssize_t lo = 0, hi = side->count;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        int64_t p = side->levels[mid].px;
        if (better(bid, p, px) || (equal_too && p == px))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Insert a level at index `at`, trimming past the capacity: a level whose place is past
 * the last kept one is not kept; otherwise the side's last level falls off when full. */
static void side_insert(TickCore *self, Side *side, Py_ssize_t at, int64_t px, int64_t size, uint64_t id)
{
    Py_ssize_t cap = self->book_capacity;
    if (at >= cap) {
        self->levels_trimmed++;
        side->trimmed = 1;
        return;
    }
    if (side->count == cap) {
        self->levels_trimmed++;
        side->trimmed = 1;
        side->count--;
    }
    memmove(side->levels + at + 1, side->levels + at, (size_t)(side->count - at) * sizeof(BookLevel));
    side->levels[at].px = px;
    side->levels[at].size = size;
    side->levels[at].id = id;
    side->count++;
}

static void side_remove(Side *side, Py_ssize_t at)
{
    memmove(side->levels + at, side->levels + at + 1, (size_t)(side->count - at - 1) * sizeof(BookLevel));
    side->count--;
}

/* The index of the entry with `id` in the side, or -1. */
static Py_ssize_t side_find_id(const Side *side, uint64_t id)
{
    for (Py_ssize_t i = 0; i < side->count; i++)
        if (side->levels[i].id == id)
            return i;
    return -1;
}

/* A change or delete names a level the side does not hold: a fault, unless a level was
 * trimmed since the last snapshot (it may name that one). */
static void side_missing(TickCore *self, Book *b, const Side *side)
{
    if (!side->trimmed)
        book_fault(self, b, F_MISSING_LEVEL);
}

/* Apply one bid or offer entry (action A_NEW, A_CHANGE or A_DELETE) under the core's
 * model; a faulting entry is counted and not applied. `snapshot`: a W's entry (New, and
 * in the position model a missing position appends). */
static void book_apply(TickCore *self, Book *b, const Entry *e, int snapshot)
{
    int bid = e->kind == K_BID;
    Side *side = bid ? &b->bids : &b->asks;
    int64_t size = e->size == ABSENT ? 0 : e->size;
    int action = snapshot ? A_NEW : e->action;
    if (self->model == M_PRICE) {
        int64_t px = e->px == ABSENT ? 0 : e->px;
        Py_ssize_t at = side_place(side, bid, px, 0);
        int found = at < side->count && side->levels[at].px == px;
        if (action == A_DELETE) {
            if (found)
                side_remove(side, at);
            else
                side_missing(self, b, side);
        } else if (found) {
            side->levels[at].size = size;
        } else {
            side_insert(self, side, at, px, size, 0);
        }
    } else if (self->model == M_POSITION) {
        int64_t p = e->position;
        if (p == ABSENT) {
            if (!snapshot) {
                book_fault(self, b, F_NO_POSITION);
                return;
            }
            p = side->count + 1;
        }
        if (action == A_NEW) {
            if (p > self->book_capacity)
                book_fault(self, b, F_BEYOND_DEPTH);
            else if (p < 1 || p > side->count + 1)
                book_fault(self, b, F_POSITION_GAP);
            else
                side_insert(self, side, (Py_ssize_t)p - 1, e->px, size, 0);
        } else if (p < 1 || p > side->count) {
            side_missing(self, b, side);
        } else if (action == A_DELETE) {
            side_remove(side, (Py_ssize_t)p - 1);
        } else {
            side->levels[p - 1].px = e->px;
            side->levels[p - 1].size = size;
        }
    } else {
        uint64_t key = action != A_NEW && e->ref ? e->ref : e->id;
        if (key == 0) {
            book_fault(self, b, F_NO_ENTRY_ID);
            return;
        }
        if (action == A_NEW) {
            if (side_find_id(&b->bids, key) >= 0 || side_find_id(&b->asks, key) >= 0) {
                book_fault(self, b, F_DUPLICATE_ID);
                return;
            }
            side_insert(self, side, side_place(side, bid, e->px, 1), e->px, size, key);
            return;
        }
        Py_ssize_t at = side_find_id(side, key);
        if (at < 0) {
            side_missing(self, b, side);
            return;
        }
        if (action == A_DELETE) {
            side_remove(side, at);
            return;
        }
        uint64_t id = key;
        if (e->ref && e->id && e->id != key) { /* renamed: the new id must not be held */
            if (side_find_id(&b->bids, e->id) >= 0 || side_find_id(&b->asks, e->id) >= 0) {
                book_fault(self, b, F_DUPLICATE_ID);
                return;
            }
            id = e->id;
        }
        if (side->levels[at].px == e->px) { /* the same price: it keeps its place */
            side->levels[at].size = size;
            side->levels[at].id = id;
            return;
        }
        side_remove(side, at);
        side_insert(self, side, side_place(side, bid, e->px, 1), e->px, size, id);
    }
}

/* The top of one side: (price, size), (0, 0) when empty; in the entry_id model the size
 * of every entry at the best price. */
static void side_top(const TickCore *self, const Side *side, int64_t *px, int64_t *size)
{
    if (side->count == 0) {
        *px = *size = 0;
        return;
    }
    *px = side->levels[0].px;
    *size = side->levels[0].size;
    if (self->model == M_ENTRY_ID)
        for (Py_ssize_t i = 1; i < side->count && side->levels[i].px == *px; i++)
            *size += side->levels[i].size;
}

/* After a message: a crossed or (unless legal) locked book is a fault. */
static void book_check(TickCore *self, Book *b)
{
    if (b->bids.count == 0 || b->asks.count == 0)
        return;
    int64_t bid = b->bids.levels[0].px, ask = b->asks.levels[0].px;
    if (bid > ask)
        book_fault(self, b, F_CROSSED);
    else if (bid == ask && !self->locked_ok)
        book_fault(self, b, F_LOCKED);
}

static void book_clear(Book *b)
{
    b->bids.count = b->asks.count = 0;
    b->bids.trimmed = b->asks.trimmed = 0;
}

/* A side's view as price levels, best first, at most `n` of them, into `out`: its levels
 * as held, or in the entry_id model the entries at each price summed. How many. */
static Py_ssize_t side_view(const TickCore *self, const Side *side, Py_ssize_t n, BookLevel *out)
{
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < side->count; i++) {
        const BookLevel *l = &side->levels[i];
        if (self->model == M_ENTRY_ID && k > 0 && out[k - 1].px == l->px) {
            out[k - 1].size += l->size;
            continue;
        }
        if (k == n)
            break;
        out[k].px = l->px;
        out[k].size = l->size;
        out[k].id = 0;
        k++;
    }
    return k;
}

/* 1 when the top of book, its validity or (with depth) the levels it shows changed since
 * the last published tick; the published state is then brought up to date. */
static int book_publish(TickCore *self, Book *b)
{
    int64_t bid_px, bid_size, ask_px, ask_size;
    side_top(self, &b->bids, &bid_px, &bid_size);
    side_top(self, &b->asks, &ask_px, &ask_size);
    int changed = bid_px != b->pub_bid_px || bid_size != b->pub_bid_size || ask_px != b->pub_ask_px ||
                  ask_size != b->pub_ask_size || b->invalid != b->pub_invalid;
    if (self->depth) {
        Py_ssize_t d = self->depth;
        BookLevel *view = self->depth_scratch;
        Py_ssize_t nb = side_view(self, &b->bids, d, view);
        Py_ssize_t na = side_view(self, &b->asks, d, view + d);
        if (nb != b->pub_bids || na != b->pub_asks ||
            memcmp(view, b->pub_depth, (size_t)nb * sizeof(BookLevel)) != 0 ||
            memcmp(view + d, b->pub_depth + d, (size_t)na * sizeof(BookLevel)) != 0) {
            memcpy(b->pub_depth, view, (size_t)nb * sizeof(BookLevel));
            memcpy(b->pub_depth + d, view + d, (size_t)na * sizeof(BookLevel));
            b->pub_bids = nb;
            b->pub_asks = na;
            changed = 1;
        }
    }
    if (!changed)
        return 0;
    b->pub_bid_px = bid_px;
    b->pub_bid_size = bid_size;
    b->pub_ask_px = ask_px;
    b->pub_ask_size = ask_size;
    b->pub_invalid = b->invalid;
    return 1;
}

/* ---- tick output -------------------------------------------------------------------- */

static int reserve_out(TickCore *self, Py_ssize_t extra)
{
    if (self->out_len + extra <= self->out_capacity)
        return 0;
    Py_ssize_t capacity = self->out_capacity ? self->out_capacity : 1 << 16;
    while (capacity < self->out_len + extra)
        capacity *= 2;
    char *out = PyMem_Realloc(self->out, (size_t)capacity);
    if (out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->out = out;
    self->out_capacity = capacity;
    return 0;
}

/* The next tick of a slot's symbol (fix_session.tick_encoding.encode_fields). */
static int emit(TickCore *self, Py_ssize_t slot_index, int kind, int64_t venue_ns, int64_t ingest_ns,
                int64_t fix_seq, int snapshot)
{
    Slot *slot = &self->slots[slot_index];
    Book *b = slot->book;
    b->seq++;
    if (slot->held && !snapshot) {
        self->ticks_suppressed++;
        return 0;
    }
    Py_ssize_t levels = kind == QUOTE_TICK ? b->pub_bids + b->pub_asks : 0;
    if (reserve_out(self, 8 + slot->head_len + 16 * 11 + levels * 24) < 0)
        return -1;
    char *start = self->out + self->out_len + 8;
    char *p = start;
    memcpy(p, slot->head, (size_t)slot->head_len);
    p += slot->head_len;
    *p++ = 0x10;
    p = put_varint(p, b->seq);
    *p++ = 0x18;
    p = put_varint(p, (uint64_t)(int64_t)kind);
    if (b->pub_bid_px != 0) {
        *p++ = 0x20;
        p = put_varint(p, (uint64_t)b->pub_bid_px);
        *p++ = 0x28;
        p = put_varint(p, (uint64_t)b->pub_bid_size);
    }
    if (b->pub_ask_px != 0) {
        *p++ = 0x30;
        p = put_varint(p, (uint64_t)b->pub_ask_px);
        *p++ = 0x38;
        p = put_varint(p, (uint64_t)b->pub_ask_size);
    }
    if (b->has_last) {
        *p++ = 0x40;
        p = put_varint(p, (uint64_t)b->last_px);
        *p++ = 0x48;
        p = put_varint(p, (uint64_t)b->last_size);
    }
    if (venue_ns) {
        *p++ = 0x50;
        p = put_varint(p, (uint64_t)venue_ns);
    }
    if (ingest_ns) {
        *p++ = 0x58;
        p = put_varint(p, (uint64_t)ingest_ns);
    }
    if (fix_seq) {
        *p++ = 0x60;
        p = put_varint(p, (uint64_t)fix_seq);
    }
    if (snapshot) {
        *p++ = 0x68;
        *p++ = 1;
    }
    if (b->invalid) { /* book_invalid = 16 */
        *p++ = (char)0x80;
        *p++ = 0x01;
        *p++ = 1;
    }
    for (Py_ssize_t i = 0; i < levels; i++) { /* bid_levels = 17, ask_levels = 18 */
        int bid = i < b->pub_bids;
        const BookLevel *l = bid ? &b->pub_depth[i] : &b->pub_depth[self->depth + i - b->pub_bids];
        *p++ = (char)(bid ? 0x8A : 0x92);
        *p++ = 0x01;
        char *len_at = p++;
        char *body = p;
        if (l->px) { /* proto3: a zero field is not written */
            *p++ = 0x08;
            p = put_varint(p, (uint64_t)l->px);
        }
        if (l->size) {
            *p++ = 0x10;
            p = put_varint(p, (uint64_t)l->size);
        }
        *len_at = (char)(p - body);
    }
    uint32_t index = (uint32_t)slot_index;
    uint32_t len = (uint32_t)(p - start);
    memcpy(self->out + self->out_len, &index, 4);
    memcpy(self->out + self->out_len + 4, &len, 4);
    self->out_len += 8 + (Py_ssize_t)len;
    self->out_ticks++;
    return 0;
}

static int64_t venue_time(int64_t time_ns, int64_t sending_ns)
{
    if (time_ns == ABSENT)
        return sending_ns;
    int64_t mod = sending_ns % DAY_NS;
    if (mod < 0)
        mod += DAY_NS;
    return sending_ns - mod + time_ns;
}

/* ---- applying a decoded message (entries in self->entries) --------------------------- */

static int apply_snapshot(TickCore *self, Py_ssize_t slot, Py_ssize_t count, int64_t sending_ns,
                          int64_t fix_seq, int64_t ingest_ns)
{
    Book *b = book_of(self, slot);
    if (b == NULL)
        return -1;
    self->snapshots++;
    self->n_entries += count;
    self->slots[slot].held = 0;
    book_clear(b);
    b->invalid = 0; /* trusted again from this snapshot on (its own faults aside) */
    Py_ssize_t trade = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        Entry *e = &self->entries[i];
        if (e->kind == K_BID || e->kind == K_OFFER)
            book_apply(self, b, e, 1);
        else if (e->kind == K_TRADE)
            trade = i;
    }
    book_check(self, b);
    book_publish(self, b);
    self->quotes_out++;
    if (emit(self, slot, QUOTE_TICK, sending_ns, ingest_ns, fix_seq, 1) < 0)
        return -1;
    if (trade >= 0) {
        Entry *e = &self->entries[trade];
        b->has_last = 1;
        b->last_px = e->px;
        b->last_size = e->size == ABSENT ? 0 : e->size;
        self->trades_out++;
        if (emit(self, slot, TRADE_TICK, venue_time(e->time_ns, sending_ns), ingest_ns, fix_seq, 1) < 0)
            return -1;
    }
    return 0;
}

/* The slots of an X's entries are resolved before it is applied (slot_of[i]). The book
 * entries are applied first and each touched book checked, so every tick of the message
 * (its trades, in entry order, then one quote per symbol whose top or validity changed,
 * in the order the message first touched them) carries the book's state after it. */
static int apply_incremental(TickCore *self, const Py_ssize_t *slot_of, Py_ssize_t count,
                             int64_t sending_ns, int64_t fix_seq, int64_t ingest_ns)
{
    self->increments++;
    self->n_entries += count;
    uint64_t mark = ++self->message_count;
    Py_ssize_t touched = 0;
    int trades = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Entry *e = &self->entries[i];
        Py_ssize_t slot = slot_of[i];
        Book *b = book_of(self, slot);
        if (b == NULL)
            return -1;
        if (e->kind == K_TRADE) {
            trades = 1;
            continue;
        }
        if (e->kind != K_BID && e->kind != K_OFFER)
            continue;
        book_apply(self, b, e, 0);
        if (b->mark != mark) {
            b->mark = mark;
            self->touched[touched++] = slot;
        }
    }
    for (Py_ssize_t k = 0; k < touched; k++)
        book_check(self, self->slots[self->touched[k]].book);
    for (Py_ssize_t i = 0; trades && i < count; i++) {
        Entry *e = &self->entries[i];
        if (e->kind != K_TRADE)
            continue;
        Py_ssize_t slot = slot_of[i];
        Book *b = self->slots[slot].book;
        int64_t venue_ns;
        b->has_last = 1;
        if (e->action == A_DELETE) {
            b->last_px = e->px == ABSENT ? 0 : e->px;
            b->last_size = 0;
            venue_ns = sending_ns;
        } else {
            b->last_px = e->px;
            b->last_size = e->size == ABSENT ? 0 : e->size;
            venue_ns = venue_time(e->time_ns, sending_ns);
        }
        self->trades_out++;
        if (emit(self, slot, TRADE_TICK, venue_ns, ingest_ns, fix_seq, 0) < 0)
            return -1;
    }
    for (Py_ssize_t k = 0; k < touched; k++) {
        Py_ssize_t slot = self->touched[k];
        if (book_publish(self, self->slots[slot].book)) {
            self->quotes_out++;
            if (emit(self, slot, QUOTE_TICK, sending_ns, ingest_ns, fix_seq, 0) < 0)
                return -1;
        }
    }
    return 0;
}

static int reserve_entries(TickCore *self, Py_ssize_t count)
{
    if (count <= self->entry_capacity)
        return 0;
    Py_ssize_t capacity = self->entry_capacity ? self->entry_capacity : 64;
    while (capacity < count)
        capacity *= 2;
    Entry *entries = PyMem_Realloc(self->entries, (size_t)capacity * sizeof(Entry));
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->entries = entries;
    self->entry_capacity = capacity;
    return 0;
}

/* ---- the raw decoder ------------------------------------------------------------------ */

/* A field at body[i]: tag, value bounds, and the index after its SOH. 0 on success, -1 to
 * leave the message to the Python path. */
typedef struct {
    Py_ssize_t start;
    long tag;
    Py_ssize_t vs, ve;
} Field;

#define TAG_UNKNOWN (-(1L << 40))
#define TAG_END (-(2L << 40))

static inline int next_field(const char *body, Py_ssize_t i, Py_ssize_t n, Field *f)
{
    f->start = i;
    if (i >= n) {
        f->tag = TAG_END;
        f->vs = f->ve = i;
        return 0;
    }
    long tag = 0;
    unsigned char c = (unsigned char)body[i];
    while (c >= '0' && c <= '9') {
        tag = tag * 10 + (c - '0');
        i++;
        if (i >= n)
            return -1;
        c = (unsigned char)body[i];
        if (i - f->start > 12)
            return -1;
    }
    if (c != '=' || i == f->start)
        return -1;
    if (body[f->start] == '0' || i - f->start > 9)
        tag = TAG_UNKNOWN;
    f->tag = tag;
    i++;
    f->vs = i;
    while (i < n && body[i] != 1) {
        if (body[i] == '=')
            return -1;
        i++;
    }
    if (i >= n)
        return -1;
    f->ve = i;
    return 0;
}

static int parse_int(const char *v, Py_ssize_t n, int64_t *out)
{
    Py_ssize_t j = 0;
    int negative = 0;
    if (n > 0 && v[0] == '-') {
        negative = 1;
        j = 1;
    }
    if (j == n || n - j > 18)
        return -1;
    int64_t x = 0;
    for (; j < n; j++) {
        if (v[j] < '0' || v[j] > '9')
            return -1;
        x = x * 10 + (v[j] - '0');
    }
    *out = negative ? -x : x;
    return 0;
}

static const int64_t SCALE[9] = {100000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1};
static const int64_t TIME_SCALE[10] = {1000000000, 100000000, 10000000, 1000000, 100000,
                                       10000,      1000,      100,      10,      1};

/* A PRICE or QTY in the plain form (at most 10 integer and 8 fraction digits). */
static int parse_e8(const char *v, Py_ssize_t n, int64_t *out)
{
    Py_ssize_t j = 0;
    int negative = j < n && v[j] == '-';
    if (negative)
        j++;
    int64_t whole = 0, frac = 0;
    int whole_digits = 0, frac_digits = 0;
    while (j < n && v[j] >= '0' && v[j] <= '9') {
        whole = whole * 10 + (v[j] - '0');
        whole_digits++;
        j++;
        if (whole_digits > 10)
            return -1;
    }
    if (j < n && v[j] == '.') {
        j++;
        while (j < n && v[j] >= '0' && v[j] <= '9') {
            frac = frac * 10 + (v[j] - '0');
            frac_digits++;
            j++;
            if (frac_digits > 8)
                return -1;
        }
    }
    if (j != n || whole_digits + frac_digits == 0)
        return -1;
    int64_t scaled = whole * E8 + frac * SCALE[frac_digits];
    *out = negative ? -scaled : scaled;
    return 0;
}

static int two_digits(const char *v)
{
    if (v[0] < '0' || v[0] > '9' || v[1] < '0' || v[1] > '9')
        return -1;
    return (v[0] - '0') * 10 + (v[1] - '0');
}

/* HH:MM:SS[.f{1,9}] as ns since midnight. */
static int parse_time(const char *v, Py_ssize_t n, int64_t *out)
{
    if (n < 8 || v[2] != ':' || v[5] != ':')
        return -1;
    if (n > 8 && (v[8] != '.' || n == 9 || n > 18))
        return -1;
    int h = two_digits(v), m = two_digits(v + 3), s = two_digits(v + 6);
    if (h < 0 || m < 0 || s < 0 || h > 23 || m > 59 || s > 60)
        return -1;
    int64_t ns = ((int64_t)(h * 60 + m) * 60 + s) * 1000000000LL;
    if (n > 8) {
        int64_t frac = 0;
        for (Py_ssize_t j = 9; j < n; j++) {
            if (v[j] < '0' || v[j] > '9')
                return -1;
            frac = frac * 10 + (v[j] - '0');
        }
        ns += frac * TIME_SCALE[n - 9];
    }
    *out = ns;
    return 0;
}

/* YYYYMMDD-HH:MM:SS[.f{1,9}] as ns since the epoch (proleptic Gregorian, years 1..9999). */
static int parse_timestamp(const char *v, Py_ssize_t n, int64_t *out)
{
    if (n < 17 || v[8] != '-')
        return -1;
    for (int j = 0; j < 8; j++)
        if (v[j] < '0' || v[j] > '9')
            return -1;
    int64_t y = (v[0] - '0') * 1000 + (v[1] - '0') * 100 + (v[2] - '0') * 10 + (v[3] - '0');
    int mo = (v[4] - '0') * 10 + (v[5] - '0');
    int d = (v[6] - '0') * 10 + (v[7] - '0');
    static const int days_in[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > days_in[mo - 1] + (mo == 2 && leap))
        return -1;
    /* days from civil (H. Hinnant) */
    int64_t yy = y - (mo <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    int64_t tod;
    if (parse_time(v + 9, n - 9, &tod) < 0)
        return -1;
    *out = days * DAY_NS + tod;
    return 0;
}

typedef struct {
    int64_t seq_num;
    int64_t sending_ns;
    const char *symbol;
    Py_ssize_t symbol_len;
    Py_ssize_t count;
} Decoded;

/* The header from body[i]: the index of the body's first field, or -1 to leave. */
static Py_ssize_t read_header(TickCore *self, const char *body, Py_ssize_t i, Py_ssize_t n, Decoded *d)
{
    const Level *level = &self->header;
    Bits seen;
    bits_clear(&seen);
    Field f = {0, 0, 0, 0};
    while (i < n) {
        if (next_field(body, i, n, &f) < 0)
            return -1;
        int code = level_code(level, f.tag);
        if (code == C_NOT_HERE) {
            i = f.ve + 1;
            continue;
        }
        if (code == C_KNOWN_ELSEWHERE || code == C_ENCLOSING) {
            i = f.start;
            break;
        }
        if (code < 0 || code > MAX_CODE || bits_test(&seen, code) || f.vs == f.ve)
            return -1;
        bits_set(&seen, code);
        if (code == H_SEQ_NUM) {
            if (parse_int(body + f.vs, f.ve - f.vs, &d->seq_num) < 0)
                return -1;
        } else if (code == H_SENDING) {
            if (parse_timestamp(body + f.vs, f.ve - f.vs, &d->sending_ns) < 0)
                return -1;
        }
        i = f.ve + 1;
    }
    if (!bits_cover(&seen, &level->required))
        return -1;
    return i;
}

static inline int symbol_ok(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t j = 0; j < n; j++)
        if ((unsigned char)s[j] >= 0x80)
            return 0;
    return 1;
}

/* NoMDEntries: the entries into self->entries; the index of the field after the group,
 * or -1 to leave. */
static Py_ssize_t read_entries(TickCore *self, const Level *level, const char *body, Py_ssize_t vs,
                               Py_ssize_t ve, Py_ssize_t n, Decoded *d)
{
    int64_t count;
    if (ve - vs > 9)
        return -1;
    for (Py_ssize_t j = vs; j < ve; j++)
        if (body[j] < '0' || body[j] > '9')
            return -1;
    if (parse_int(body + vs, ve - vs, &count) < 0 || count > MAX_ENTRIES)
        return -1;
    if (reserve_entries(self, (Py_ssize_t)count) < 0)
        return -2;
    Py_ssize_t entries = 0;
    Field f = {0, 0, 0, 0};
    if (next_field(body, ve + 1, n, &f) < 0)
        return -1;
    Bits seen;
    while (f.tag == level->first_tag) {
        if (entries == count)
            return -1;
        Entry *e = &self->entries[entries];
        e->action = A_NEW;
        e->kind = INT32_MIN;
        e->sym = NULL;
        e->sym_len = 0;
        e->px = e->size = e->time_ns = ABSENT;
        e->position = e->level = ABSENT;
        e->id = e->ref = 0;
        bits_clear(&seen);
        for (;;) {
            int code = level_code(level, f.tag);
            if (code < 0) {
                if (code == C_OPAQUE)
                    return -1;
                if (code == C_ENCLOSING)
                    break;
            } else {
                if (code > MAX_CODE)
                    return -1;
                if (bits_test(&seen, code)) {
                    if (f.tag != level->first_tag)
                        return -1; /* a repeated tag inside an entry: the Python path */
                    break;
                }
                bits_set(&seen, code);
                const char *v = body + f.vs;
                Py_ssize_t len = f.ve - f.vs;
                if (len == 0)
                    return -1;
                switch (code) {
                case E_PX:
                    if (parse_e8(v, len, &e->px) < 0)
                        return -1;
                    break;
                case E_SIZE:
                    if (parse_e8(v, len, &e->size) < 0)
                        return -1;
                    break;
                case E_KIND: {
                    unsigned char c = (unsigned char)v[0];
                    if (len != 1 || !self->kind_chars[c])
                        return -1;
                    e->kind = c == '0' ? K_BID : c == '1' ? K_OFFER : c == '2' ? K_TRADE : K_OTHER;
                    break;
                }
                case E_ACTION: {
                    unsigned char c = (unsigned char)v[0];
                    if (len != 1 || !self->action_chars[c])
                        return -1;
                    e->action = c == '0' ? A_NEW : c == '1' ? A_CHANGE : c == '2' ? A_DELETE : INT32_MIN;
                    break;
                }
                case E_SYMBOL:
                    if (!symbol_ok(v, len))
                        return -1;
                    e->sym = v;
                    e->sym_len = len;
                    break;
                case E_TIME:
                    if (parse_time(v, len, &e->time_ns) < 0)
                        return -1;
                    break;
                case E_POSITION:
                    if (parse_int(v, len, &e->position) < 0)
                        return -1;
                    break;
                case E_LEVEL:
                    if (parse_int(v, len, &e->level) < 0)
                        return -1;
                    break;
                case E_ENTRY_ID:
                    e->id = hash_bytes(v, len);
                    break;
                case E_REF_ID:
                    e->ref = hash_bytes(v, len);
                    break;
                default:
                    break; /* fields not read */
                }
            }
            if (f.ve + 1 >= n) {
                f.start = n;
                f.tag = TAG_END;
                break;
            }
            if (next_field(body, f.ve + 1, n, &f) < 0)
                return -1;
        }
        if (!bits_cover(&seen, &level->required))
            return -1;
        if (e->position == ABSENT)
            e->position = e->level;
        entries++;
    }
    if (entries != count)
        return -1;
    d->count = entries;
    return f.start;
}

/* The body of a W or X from body[i]. 0, or -1 to leave, -2 on a Python error. */
static int read_body(TickCore *self, const Level *level, const Level *entry_level, const char *body,
                     Py_ssize_t i, Py_ssize_t n, Decoded *d)
{
    Bits seen;
    bits_clear(&seen);
    Field f = {0, 0, 0, 0};
    while (i < n) {
        if (next_field(body, i, n, &f) < 0)
            return -1;
        int code = level_code(level, f.tag);
        if (code < 0) {
            if (code == C_OPAQUE)
                return -1;
            i = f.ve + 1;
            continue;
        }
        if (code > MAX_CODE || bits_test(&seen, code) || f.vs == f.ve)
            return -1;
        bits_set(&seen, code);
        i = f.ve + 1;
        if (code == B_ENTRIES) {
            Py_ssize_t next = read_entries(self, entry_level, body, f.vs, f.ve, n, d);
            if (next < 0)
                return (int)next;
            i = next;
        } else if (code == B_SYMBOL) {
            if (!symbol_ok(body + f.vs, f.ve - f.vs))
                return -1;
            d->symbol = body + f.vs;
            d->symbol_len = f.ve - f.vs;
        } else if (code == B_REJ_REASON) {
            return -1;
        }
    }
    if (!bits_cover(&seen, &level->required))
        return -1;
    return 0;
}

/* ---- Python type ------------------------------------------------------------------- */

static void level_free(Level *level)
{
    PyMem_Free(level->table);
    level->table = NULL;
    level->size = 0;
}

static int level_from(PyObject *spec, Level *level)
{
    /* spec: (table: list[int], required codes: list[int], first tag: int) */
    PyObject *table, *required;
    long first_tag;
    if (!PyArg_ParseTuple(spec, "O!O!l", &PyList_Type, &table, &PyList_Type, &required, &first_tag))
        return -1;
    Py_ssize_t size = PyList_GET_SIZE(table);
    level->table = PyMem_Malloc((size_t)(size ? size : 1) * sizeof(int32_t));
    if (level->table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    level->size = size;
    for (Py_ssize_t i = 0; i < size; i++) {
        long code = PyLong_AsLong(PyList_GET_ITEM(table, i));
        if (code == -1 && PyErr_Occurred())
            return -1;
        if (code > MAX_CODE)
            code = MAX_CODE + 1; /* read as "leave it to Python" */
        level->table[i] = (int32_t)code;
    }
    bits_clear(&level->required);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(required); i++) {
        long code = PyLong_AsLong(PyList_GET_ITEM(required, i));
        if (code == -1 && PyErr_Occurred())
            return -1;
        if (code < 0 || code > MAX_CODE) {
            PyErr_Format(PyExc_ValueError, "required code %ld out of range", code);
            return -1;
        }
        bits_set(&level->required, (int)code);
    }
    level->first_tag = first_tag;
    return 0;
}

static int chars_from(PyObject *obj, unsigned char *chars)
{
    char *data;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(obj, &data, &n) < 0)
        return -1;
    if (n != 256) {
        PyErr_SetString(PyExc_ValueError, "a char table has 256 bytes");
        return -1;
    }
    memcpy(chars, data, 256);
    return 0;
}

/* The slot of a symbol given as str: created when `create` (else -1 if there is none);
 * -2 on error. */
static Py_ssize_t slot_of_text(TickCore *self, PyObject *text, int create)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL)
        return -2;
    Py_ssize_t slot = find_slot(self, s, n, create, 0);
    return slot == -2 ? -2 : slot;
}

static int add_symbol(TickCore *self, PyObject *symbol)
{
    Py_ssize_t slot = slot_of_text(self, symbol, 1);
    if (slot < 0)
        return -1;
    self->slots[slot].allowed = 1;
    return 0;
}

static int TickCore_init(TickCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"symbols", "layout", "model", "capacity", "locked_ok", "depth", NULL};
    PyObject *symbols = NULL, *layout = Py_None;
    int model = M_PRICE, locked_ok = 0;
    Py_ssize_t book_capacity = 15, depth = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$inpn", kwlist, &symbols, &layout, &model,
                                     &book_capacity, &locked_ok, &depth))
        return -1;
    if (depth < 0 || depth > book_capacity) {
        PyErr_Format(PyExc_ValueError, "depth %zd: 0 to the capacity (%zd) levels a side", depth,
                     book_capacity);
        return -1;
    }
    if (depth) {
        self->depth_scratch = PyMem_Calloc((size_t)depth * 2, sizeof(BookLevel));
        if (self->depth_scratch == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->depth = depth;
    }
    if (model < M_PRICE || model > M_ENTRY_ID) {
        PyErr_Format(PyExc_ValueError, "model %d: 0 (price), 1 (position) or 2 (entry_id)", model);
        return -1;
    }
    if (book_capacity < 1 || book_capacity > 100000) {
        PyErr_Format(PyExc_ValueError, "capacity %zd: 1 to 100000 levels per side", book_capacity);
        return -1;
    }
    self->model = model;
    self->book_capacity = book_capacity;
    self->locked_ok = locked_ok;
    if (self->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TickCore is initialized once");
        return -1;
    }
    self->capacity = 64;
    self->slots = PyMem_Calloc((size_t)self->capacity, sizeof(Slot));
    self->order = PyMem_Calloc((size_t)self->capacity, sizeof(Py_ssize_t));
    self->touched = PyMem_Calloc((size_t)self->capacity, sizeof(Py_ssize_t));
    self->flush_order = PyMem_Calloc((size_t)self->capacity, sizeof(Py_ssize_t));
    if (!self->slots || !self->order || !self->touched || !self->flush_order) {
        PyErr_NoMemory();
        return -1;
    }
    self->last_slot = -1;
    PyObject *iter = PyObject_GetIter(symbols);
    if (iter == NULL)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(iter)) != NULL) {
        if (!PyUnicode_Check(item)) {
            Py_DECREF(item);
            Py_DECREF(iter);
            PyErr_SetString(PyExc_TypeError, "symbols are str");
            return -1;
        }
        self->restricted = 1;
        int rc = add_symbol(self, item);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(iter);
            return -1;
        }
    }
    Py_DECREF(iter);
    if (PyErr_Occurred())
        return -1;
    if (layout != Py_None) {
        /* (prefix, header, body W, entry W, body X, entry X, kind chars, action chars) */
        PyObject *prefix, *header, *body_w, *entry_w, *body_x, *entry_x, *kinds, *actions;
        if (!PyArg_ParseTuple(layout, "SOOOOOSS", &prefix, &header, &body_w, &entry_w, &body_x,
                              &entry_x, &kinds, &actions))
            return -1;
        self->prefix_len = PyBytes_GET_SIZE(prefix);
        self->prefix = PyMem_Malloc((size_t)self->prefix_len + 1);
        if (self->prefix == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(self->prefix, PyBytes_AS_STRING(prefix), (size_t)self->prefix_len);
        if (level_from(header, &self->header) < 0 || level_from(body_w, &self->body_w) < 0 ||
            level_from(entry_w, &self->entry_w) < 0 || level_from(body_x, &self->body_x) < 0 ||
            level_from(entry_x, &self->entry_x) < 0 || chars_from(kinds, self->kind_chars) < 0 ||
            chars_from(actions, self->action_chars) < 0)
            return -1;
        self->has_layout = 1;
    }
    return 0;
}

static void TickCore_dealloc(TickCore *self)
{
    if (self->slots != NULL) {
        for (Py_ssize_t k = 0; k < self->used; k++) {
            Slot *s = &self->slots[self->order[k]];
            PyMem_Free(s->name);
            PyMem_Free(s->head);
            Py_XDECREF(s->key);
            Py_XDECREF(s->text);
            Py_XDECREF(s->out_obj);
            book_free(s->book);
        }
    }
    if (self->in_ready) {
        for (Py_ssize_t k = 0; k < self->ring_count; k++)
            free(self->ring[(self->ring_head + k) % self->ring_capacity].data);
        PyMem_Free(self->ring);
        close(self->wake_fd);
        pthread_mutex_destroy(&self->in_lock);
        pthread_cond_destroy(&self->in_room);
    }
    PyMem_Free(self->slots);
    PyMem_Free(self->order);
    PyMem_Free(self->touched);
    PyMem_Free(self->flush_order);
    PyMem_Free(self->depth_scratch);
    PyMem_Free(self->entries);
    PyMem_Free(self->out);
    PyMem_Free(self->prefix);
    level_free(&self->header);
    level_free(&self->body_w);
    level_free(&self->body_x);
    level_free(&self->entry_w);
    level_free(&self->entry_x);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The normalizer's checks (BookNormalizer._check) on decoded entries; resolves each
 * entry's slot. 0 when the message can be applied, -1 to leave it to the Python path. */
static int check_entries(TickCore *self, const Decoded *d, Py_ssize_t *slot_of)
{
    const char *last = NULL;
    Py_ssize_t last_len = -1, last_slot = -1;
    for (Py_ssize_t i = 0; i < d->count; i++) {
        Entry *e = &self->entries[i];
        const char *s = e->sym_len ? e->sym : d->symbol;
        Py_ssize_t n = e->sym_len ? e->sym_len : d->symbol_len;
        if (n == 0)
            return -1;
        if (n != last_len || memcmp(s, last, (size_t)n) != 0) {
            last_slot = find_slot(self, s, n, 0, 0);
            if (last_slot < 0 && self->restricted)
                return -1;
            if (last_slot >= 0 && self->restricted && !self->slots[last_slot].allowed)
                return -1;
            last = s;
            last_len = n;
        }
        slot_of[i] = last_slot; /* -1: a new symbol of an unrestricted core */
        if (e->kind == INT32_MIN)
            return -1;
        if (e->action == A_DELETE)
            continue;
        if (e->px == ABSENT || e->px <= 0)
            return -1;
        if (e->size != ABSENT && e->size < 0)
            return -1;
    }
    return 0;
}

/* Decode, check and apply one raw message: RAW_X, RAW_W (self->last_slot), RAW_Y,
 * RAW_FALLBACK (nothing changed), or -1 with a Python error set. */
static int raw_apply(TickCore *self, const char *raw, Py_ssize_t size, int64_t ingest_ns)
{
    if (!self->has_layout)
        return RAW_FALLBACK;
    /* framing: 8=BeginString|9=BodyLength|body|10=CCC| */
    if (size < self->prefix_len || memcmp(raw, self->prefix, (size_t)self->prefix_len) != 0)
        return RAW_FALLBACK;
    Py_ssize_t at = self->prefix_len, length = 0, digits = 0;
    while (at < size && raw[at] >= '0' && raw[at] <= '9' && digits < 8) {
        length = length * 10 + (raw[at] - '0');
        at++;
        digits++;
    }
    if (digits == 0 || digits > 7 || at >= size || raw[at] != 1)
        return RAW_FALLBACK;
    const char *body = raw + at + 1;
    Py_ssize_t n = length;
    if (at + 1 + n + 7 != size)
        return RAW_FALLBACK;
    const char *trailer = body + n;
    if (memcmp(trailer, "10=", 3) != 0 || trailer[6] != 1 || trailer[3] < '0' || trailer[3] > '9' ||
        trailer[4] < '0' || trailer[4] > '9' || trailer[5] < '0' || trailer[5] > '9')
        return RAW_FALLBACK;
    if (n < 5 || body[n - 1] != 1 || memcmp(body, "35=", 3) != 0 || body[4] != 1)
        return RAW_FALLBACK;
    char msg_type = body[3];
    if (msg_type == 'Y')
        return RAW_Y;
    if (msg_type != 'W' && msg_type != 'X')
        return RAW_FALLBACK;
    Decoded d = {0, 0, "", 0, 0};
    Py_ssize_t i = read_header(self, body, 5, n, &d);
    if (i < 0)
        return RAW_FALLBACK;
    int rc = msg_type == 'W' ? read_body(self, &self->body_w, &self->entry_w, body, i, n, &d)
                             : read_body(self, &self->body_x, &self->entry_x, body, i, n, &d);
    if (rc == -2)
        return -1;
    if (rc < 0)
        return RAW_FALLBACK;
    Py_ssize_t stack_slots[64];
    Py_ssize_t *slot_of = d.count <= 64 ? stack_slots : PyMem_Malloc((size_t)d.count * sizeof(Py_ssize_t));
    if (slot_of == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int result = RAW_FALLBACK;
    if (check_entries(self, &d, slot_of) < 0)
        goto done;
    if (msg_type == 'W') {
        if (d.symbol_len == 0)
            goto done;
        Py_ssize_t slot = find_slot(self, d.symbol, d.symbol_len, 0, 0);
        if (slot < 0 || (self->restricted && !self->slots[slot].allowed))
            goto done; /* a new symbol: the Python path */
        if (apply_snapshot(self, slot, d.count, d.sending_ns, d.seq_num, ingest_ns) < 0) {
            result = -1;
            goto done;
        }
        self->last_slot = slot;
        result = RAW_W;
        goto done;
    }
    for (Py_ssize_t k = 0; k < d.count; k++)
        if (slot_of[k] < 0)
            goto done; /* a new symbol: the Python path */
    if (apply_incremental(self, slot_of, d.count, d.sending_ns, d.seq_num, ingest_ns) < 0) {
        result = -1;
        goto done;
    }
    result = RAW_X;
done:
    if (slot_of != stack_slots)
        PyMem_Free(slot_of);
    return result;
}

static PyObject *TickCore_on_raw(TickCore *self, PyObject *args)
{
    PyObject *data;
    long long ingest_ns;
    if (!PyArg_ParseTuple(args, "OL", &data, &ingest_ns))
        return NULL;
    const char *raw;
    Py_ssize_t size;
    if (PyUnicode_Check(data)) {
        if (!PyUnicode_IS_COMPACT_ASCII(data))
            return PyLong_FromLong(RAW_FALLBACK);
        raw = (const char *)PyUnicode_DATA(data);
        size = PyUnicode_GET_LENGTH(data);
    } else if (PyBytes_Check(data)) {
        raw = PyBytes_AS_STRING(data);
        size = PyBytes_GET_SIZE(data);
    } else {
        PyErr_SetString(PyExc_TypeError, "on_raw takes str or bytes");
        return NULL;
    }
    int status = raw_apply(self, raw, size, ingest_ns);
    if (status < 0)
        return NULL;
    return PyLong_FromLong(status);
}

/* ---- the inbox -------------------------------------------------------------------- */

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* From the QuickFIX thread, without the GIL: copy one raw message into the inbox, stamped
 * with the wall clock; wait while the inbox is full (TCP then pushes back on the venue);
 * wake the loop when it is not already woken. 0, or -1 when the inbox is stopped (the
 * message is dropped and counted). */
static int inbox_push(void *core, const char *data, size_t len)
{
    TickCore *self = (TickCore *)core;
    int64_t ingest_ns = wall_ns();
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, data, len);
    pthread_mutex_lock(&self->in_lock);
    if (self->ring_count >= self->ring_capacity && !self->in_stopped) {
        self->inbox_waits++;
        while (self->ring_count >= self->ring_capacity && !self->in_stopped)
            pthread_cond_wait(&self->in_room, &self->in_lock);
    }
    if (self->in_stopped) {
        self->dropped_on_stop++;
        pthread_mutex_unlock(&self->in_lock);
        free(copy);
        return -1;
    }
    Py_ssize_t at = (self->ring_head + self->ring_count) % self->ring_capacity;
    self->ring[at].data = copy;
    self->ring[at].len = len;
    self->ring[at].ingest_ns = ingest_ns;
    self->ring_count++;
    self->pushed++;
    int wake = !self->wake_pending;
    if (wake)
        self->wake_pending = 1;
    pthread_mutex_unlock(&self->in_lock);
    if (wake) {
        uint64_t one = 1;
        ssize_t written = write(self->wake_fd, &one, sizeof(one));
        (void)written; /* EAGAIN: the counter is already non-zero, the loop will wake */
    }
    return 0;
}

static int inbox_is_open(void *core) { return ((TickCore *)core)->in_ready; }

static PyTypeObject TickCoreType;
static const TickCoreInboxApi inbox_api = {&TickCoreType, inbox_is_open, inbox_push};

static int inbox_pop(TickCore *self, InboxMessage *out)
{
    pthread_mutex_lock(&self->in_lock);
    if (self->ring_count == 0) {
        pthread_mutex_unlock(&self->in_lock);
        return 0;
    }
    *out = self->ring[self->ring_head];
    self->ring_head = (self->ring_head + 1) % self->ring_capacity;
    self->ring_count--;
    if (self->ring_count <= self->ring_capacity / 2)
        pthread_cond_broadcast(&self->in_room);
    pthread_mutex_unlock(&self->in_lock);
    return 1;
}

static PyObject *TickCore_open_inbox(TickCore *self, PyObject *args)
{
    Py_ssize_t capacity;
    if (!PyArg_ParseTuple(args, "n", &capacity))
        return NULL;
    if (self->in_ready) {
        PyErr_SetString(PyExc_RuntimeError, "the inbox is open already");
        return NULL;
    }
    if (capacity < 2) {
        PyErr_SetString(PyExc_ValueError, "an inbox holds at least 2 messages");
        return NULL;
    }
    self->ring = PyMem_Calloc((size_t)capacity, sizeof(InboxMessage));
    if (self->ring == NULL)
        return PyErr_NoMemory();
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        PyMem_Free(self->ring);
        self->ring = NULL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_mutex_init(&self->in_lock, NULL);
    pthread_cond_init(&self->in_room, NULL);
    self->ring_capacity = capacity;
    self->in_ready = 1;
    return PyLong_FromLong(self->wake_fd);
}

static int inbox_ready(TickCore *self)
{
    if (!self->in_ready) {
        PyErr_SetString(PyExc_RuntimeError, "the inbox is not open");
        return 0;
    }
    return 1;
}

/* drain(max_messages, max_ns) -> (taken, snapshots, arrivals, fallback, fallback_ns):
 * apply inbox messages in C until the inbox is empty, max_messages are taken or max_ns
 * have passed, or a message needs the Python path: then that message is returned as
 * `fallback` (bytes; None otherwise) and the caller handles it before draining on, so
 * the order of messages is kept. `snapshots`: the symbols of the W applied; `arrivals`:
 * the ingest times of the messages applied. */
static PyObject *TickCore_drain(TickCore *self, PyObject *args)
{
    Py_ssize_t budget;
    long long max_ns;
    if (!PyArg_ParseTuple(args, "nL", &budget, &max_ns))
        return NULL;
    if (!inbox_ready(self))
        return NULL;
    uint64_t counter;
    ssize_t got = read(self->wake_fd, &counter, sizeof(counter));
    (void)got; /* EAGAIN: not signalled since the last read */
    int64_t deadline = monotonic_ns() + max_ns;
    PyObject *snapshots = PyList_New(0), *arrivals = PyList_New(0);
    PyObject *fallback = NULL;
    int64_t fallback_ns = 0;
    Py_ssize_t taken = 0;
    if (snapshots == NULL || arrivals == NULL)
        goto fail;
    InboxMessage m;
    while (taken < budget && ((taken & 15) != 15 || monotonic_ns() < deadline) && inbox_pop(self, &m)) {
        taken++;
        int status = raw_apply(self, m.data, (Py_ssize_t)m.len, m.ingest_ns);
        if (status == RAW_X || status == RAW_W) {
            PyObject *ns = PyLong_FromLongLong(m.ingest_ns);
            if (ns == NULL || PyList_Append(arrivals, ns) < 0) {
                Py_XDECREF(ns);
                free(m.data);
                goto fail;
            }
            Py_DECREF(ns);
            if (status == RAW_W && PyList_Append(snapshots, self->slots[self->last_slot].text) < 0) {
                free(m.data);
                goto fail;
            }
            free(m.data);
            continue;
        }
        if (status < 0) {
            free(m.data);
            goto fail;
        }
        fallback = PyBytes_FromStringAndSize(m.data, (Py_ssize_t)m.len);
        fallback_ns = m.ingest_ns;
        free(m.data);
        if (fallback == NULL)
            goto fail;
        break;
    }
    return Py_BuildValue("(nNNNL)", taken, snapshots, arrivals, fallback ? fallback : Py_NewRef(Py_None),
                         (long long)fallback_ns);
fail:
    Py_XDECREF(snapshots);
    Py_XDECREF(arrivals);
    Py_XDECREF(fallback);
    return NULL;
}

/* settle(hold) -> bool: after a drain. True: the inbox holds more (drain again now). False:
 * it is empty; with `hold` the loop stays "woken" (the caller drains again after a short
 * wait, and pushes meanwhile do not wake it), without, the next push wakes it. */
static PyObject *TickCore_settle(TickCore *self, PyObject *args)
{
    int hold;
    if (!PyArg_ParseTuple(args, "p", &hold))
        return NULL;
    if (!inbox_ready(self))
        return NULL;
    pthread_mutex_lock(&self->in_lock);
    int more = self->ring_count > 0;
    if (more || hold)
        self->wake_pending = 1;
    else
        self->wake_pending = 0;
    pthread_mutex_unlock(&self->in_lock);
    return PyBool_FromLong(more);
}

/* stop_inbox(): release a waiting QuickFIX thread; later pushes are dropped and counted. */
static PyObject *TickCore_stop_inbox(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!inbox_ready(self))
        return NULL;
    pthread_mutex_lock(&self->in_lock);
    self->in_stopped = 1;
    pthread_cond_broadcast(&self->in_room);
    pthread_mutex_unlock(&self->in_lock);
    Py_RETURN_NONE;
}

/* clear_inbox() -> int: drop what the inbox holds (counted as dropped on stop). */
static PyObject *TickCore_clear_inbox(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!inbox_ready(self))
        return NULL;
    InboxMessage m;
    Py_ssize_t dropped = 0;
    while (inbox_pop(self, &m)) {
        free(m.data);
        dropped++;
    }
    pthread_mutex_lock(&self->in_lock);
    self->dropped_on_stop += dropped;
    pthread_mutex_unlock(&self->in_lock);
    return PyLong_FromSsize_t(dropped);
}

static PyObject *TickCore_get_inbox(TickCore *self, void *Py_UNUSED(closure))
{
    if (!self->in_ready)
        return Py_BuildValue("(nLLL)", (Py_ssize_t)0, 0LL, 0LL, 0LL);
    pthread_mutex_lock(&self->in_lock);
    Py_ssize_t count = self->ring_count;
    long long waits = self->inbox_waits, dropped = self->dropped_on_stop, pushed = self->pushed;
    pthread_mutex_unlock(&self->in_lock);
    return Py_BuildValue("(nLLL)", count, waits, dropped, pushed);
}

static PyObject *TickCore_push(TickCore *self, PyObject *args)
{
    /* push(data): what the QuickFIX thread does, for tests (releases the GIL meanwhile). */
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data))
        return NULL;
    if (!inbox_ready(self)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = inbox_push((void *)self, data.buf, (size_t)data.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyBool_FromLong(rc == 0);
}

/* ---- apply: a message already decoded and checked by Python (MdMessage columns) ------- */

static int64_t item_int(PyObject *list, Py_ssize_t i, int *error)
{
    PyObject *v = PyList_GET_ITEM(list, i);
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) {
        *error = 1;
        return 0;
    }
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "a column value is beyond int64");
        *error = 1;
        return 0;
    }
    return (int64_t)x;
}

static PyObject *get_list(PyObject *md, const char *name, Py_ssize_t count)
{
    PyObject *list = PyObject_GetAttrString(md, name);
    if (list == NULL)
        return NULL;
    if (!PyList_Check(list) || PyList_GET_SIZE(list) < count) {
        PyErr_Format(PyExc_ValueError, "MdMessage.%s is not a list of its count", name);
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

static int64_t get_int_attr(PyObject *md, const char *name, int *error)
{
    PyObject *v = PyObject_GetAttrString(md, name);
    if (v == NULL) {
        *error = 1;
        return 0;
    }
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        *error = 1;
    return (int64_t)x;
}

/* An MDEntryID or MDEntryRefID column value (str, "" when absent) as the raw decoder
 * hashes it: its UTF-8 bytes; 0 when empty. */
static int id_hash(PyObject *text, uint64_t *out)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "entry ids are str");
        return -1;
    }
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (utf8 == NULL)
        return -1;
    *out = n ? hash_bytes(utf8, n) : 0;
    return 0;
}

/* Room for `extra` new symbols without a rehash, so slot indexes held meanwhile stay. */
static int ensure_room(TickCore *self, Py_ssize_t extra)
{
    while ((self->used + extra + 1) * 2 > self->capacity)
        if (grow_table(self) < 0)
            return -1;
    return 0;
}

static PyObject *TickCore_apply(TickCore *self, PyObject *args)
{
    PyObject *md;
    long long ingest_ns;
    if (!PyArg_ParseTuple(args, "OL", &md, &ingest_ns))
        return NULL;
    int error = 0;
    PyObject *msg_type = PyObject_GetAttrString(md, "msg_type");
    if (msg_type == NULL)
        return NULL;
    int is_w = PyUnicode_CompareWithASCIIString(msg_type, "W") == 0;
    int is_x = PyUnicode_CompareWithASCIIString(msg_type, "X") == 0;
    Py_DECREF(msg_type);
    if (!is_w && !is_x) {
        PyErr_SetString(PyExc_ValueError, "apply takes a W or an X");
        return NULL;
    }
    Py_ssize_t count = (Py_ssize_t)get_int_attr(md, "count", &error);
    int64_t seq_num = get_int_attr(md, "seq_num", &error);
    int64_t sending_ns = get_int_attr(md, "sending_ns", &error);
    if (error)
        return NULL;
    PyObject *symbol = PyObject_GetAttrString(md, "symbol");
    PyObject *action = get_list(md, "action", count), *kind = get_list(md, "kind", count);
    PyObject *symbols = get_list(md, "entry_symbol", count), *px = get_list(md, "px_e8", count);
    PyObject *size = get_list(md, "size_e8", count), *time_ns = get_list(md, "time_ns", count);
    PyObject *position = get_list(md, "position_no", count), *level = get_list(md, "price_level", count);
    PyObject *ids = get_list(md, "entry_id", count), *refs = get_list(md, "ref_id", count);
    PyObject *result = NULL;
    Py_ssize_t *slot_of = NULL;
    if (!symbol || !action || !kind || !symbols || !px || !size || !time_ns || !position || !level ||
        !ids || !refs)
        goto done;
    if (reserve_entries(self, count) < 0 || ensure_room(self, count + 1) < 0)
        goto done;
    slot_of = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(Py_ssize_t));
    if (slot_of == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *last_text = NULL;
    Py_ssize_t last_slot = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        Entry *e = &self->entries[i];
        int64_t a = item_int(action, i, &error), k = item_int(kind, i, &error);
        e->action = a == ABSENT ? INT32_MIN : (int)a;
        e->kind = k == ABSENT ? INT32_MIN : (int)k;
        e->px = item_int(px, i, &error);
        e->size = item_int(size, i, &error);
        e->time_ns = item_int(time_ns, i, &error);
        e->position = item_int(position, i, &error);
        int64_t price_level = item_int(level, i, &error);
        if (error || id_hash(PyList_GET_ITEM(ids, i), &e->id) < 0 ||
            id_hash(PyList_GET_ITEM(refs, i), &e->ref) < 0)
            goto done;
        if (e->position == ABSENT)
            e->position = price_level;
        if (is_x) {
            PyObject *text = PyList_GET_ITEM(symbols, i);
            if (!PyUnicode_Check(text)) {
                PyErr_SetString(PyExc_TypeError, "entry symbols are str");
                goto done;
            }
            if (PyUnicode_GET_LENGTH(text) == 0)
                text = symbol;
            if (last_text == NULL || PyUnicode_Compare(text, last_text) != 0) {
                if (PyErr_Occurred())
                    goto done;
                last_slot = slot_of_text(self, text, 1);
                if (last_slot < 0)
                    goto done;
                last_text = text;
            }
            slot_of[i] = last_slot;
        }
    }
    if (is_w) {
        Py_ssize_t slot = slot_of_text(self, symbol, 1);
        if (slot < 0 || apply_snapshot(self, slot, count, sending_ns, seq_num, ingest_ns) < 0)
            goto done;
    } else if (apply_incremental(self, slot_of, count, sending_ns, seq_num, ingest_ns) < 0) {
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(slot_of);
    Py_XDECREF(symbol);
    Py_XDECREF(action);
    Py_XDECREF(kind);
    Py_XDECREF(symbols);
    Py_XDECREF(px);
    Py_XDECREF(size);
    Py_XDECREF(time_ns);
    Py_XDECREF(position);
    Py_XDECREF(level);
    Py_XDECREF(ids);
    Py_XDECREF(refs);
    return result;
}

/* ---- output ---------------------------------------------------------------------------- */

static PyObject *TickCore_take(TickCore *self, PyObject *args)
{
    PyObject *keys, *values;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &keys, &PyList_Type, &values))
        return NULL;
    for (Py_ssize_t at = 0; at < self->out_len;) {
        uint32_t slot, len;
        memcpy(&slot, self->out + at, 4);
        memcpy(&len, self->out + at + 4, 4);
        PyObject *value = PyBytes_FromStringAndSize(self->out + at + 8, (Py_ssize_t)len);
        if (value == NULL)
            return NULL;
        if (PyList_Append(keys, self->slots[slot].key) < 0 || PyList_Append(values, value) < 0) {
            Py_DECREF(value);
            return NULL;
        }
        Py_DECREF(value);
        at += 8 + (Py_ssize_t)len;
    }
    self->out_len = 0;
    self->out_ticks = 0;
    Py_RETURN_NONE;
}

static PyObject *TickCore_flush(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t symbols = 0;
    for (Py_ssize_t at = 0; at < self->out_len;) {
        uint32_t slot, len;
        memcpy(&slot, self->out + at, 4);
        memcpy(&len, self->out + at + 4, 4);
        Slot *s = &self->slots[slot];
        if (s->out_size == 0)
            self->flush_order[symbols++] = slot;
        s->out_size += 1 + varint_len(len) + (Py_ssize_t)len;
        at += 8 + (Py_ssize_t)len;
    }
    PyObject *records = PyList_New(symbols);
    if (records == NULL)
        goto fail;
    for (Py_ssize_t k = 0; k < symbols; k++) {
        Slot *s = &self->slots[self->flush_order[k]];
        s->out_obj = PyBytes_FromStringAndSize(NULL, s->out_size);
        if (s->out_obj == NULL)
            goto fail;
        s->out_at = PyBytes_AS_STRING(s->out_obj);
    }
    for (Py_ssize_t at = 0; at < self->out_len;) {
        uint32_t slot, len;
        memcpy(&slot, self->out + at, 4);
        memcpy(&len, self->out + at + 4, 4);
        Slot *s = &self->slots[slot];
        char *p = s->out_at;
        *p++ = 0x0A;
        p = put_varint(p, len);
        memcpy(p, self->out + at + 8, len);
        s->out_at = p + len;
        at += 8 + (Py_ssize_t)len;
    }
    for (Py_ssize_t k = 0; k < symbols; k++) {
        Slot *s = &self->slots[self->flush_order[k]];
        PyObject *pair = PyTuple_Pack(2, s->key, s->out_obj);
        Py_CLEAR(s->out_obj);
        s->out_size = 0;
        if (pair == NULL)
            goto fail;
        PyList_SET_ITEM(records, k, pair);
    }
    self->out_len = 0;
    self->out_ticks = 0;
    return records;
fail:
    for (Py_ssize_t k = 0; k < symbols; k++) {
        Slot *s = &self->slots[self->flush_order[k]];
        Py_CLEAR(s->out_obj);
        s->out_size = 0;
    }
    Py_XDECREF(records);
    return NULL;
}

/* ---- state -------------------------------------------------------------------------- */

static PyObject *TickCore_top(TickCore *self, PyObject *symbol)
{
    Py_ssize_t slot = slot_of_text(self, symbol, 0);
    if (slot == -2)
        return NULL;
    if (slot < 0 || self->slots[slot].book == NULL)
        return Py_BuildValue("(OOO)", Py_None, Py_None, Py_None);
    Book *b = self->slots[slot].book;
    PyObject *bid = b->pub_bid_px ? PyLong_FromLongLong(b->pub_bid_px) : Py_NewRef(Py_None);
    PyObject *ask = b->pub_ask_px ? PyLong_FromLongLong(b->pub_ask_px) : Py_NewRef(Py_None);
    PyObject *last = b->has_last ? PyLong_FromLongLong(b->last_px) : Py_NewRef(Py_None);
    if (!bid || !ask || !last) {
        Py_XDECREF(bid);
        Py_XDECREF(ask);
        Py_XDECREF(last);
        return NULL;
    }
    return Py_BuildValue("(NNN)", bid, ask, last);
}

static PyObject *TickCore_sequence(TickCore *self, PyObject *symbol)
{
    Py_ssize_t slot = slot_of_text(self, symbol, 0);
    if (slot == -2)
        return NULL;
    if (slot < 0 || self->slots[slot].book == NULL)
        return PyLong_FromLong(0);
    return PyLong_FromUnsignedLongLong(self->slots[slot].book->seq);
}

static PyObject *TickCore_symbols(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < self->used; k++) {
        Slot *s = &self->slots[self->order[k]];
        if (s->book != NULL && PyList_Append(out, s->text) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *TickCore_hold_back(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    for (Py_ssize_t k = 0; k < self->used; k++)
        self->slots[self->order[k]].held = 1;
    Py_RETURN_NONE;
}

static PyObject *TickCore_held(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < self->used; k++) {
        Slot *s = &self->slots[self->order[k]];
        if (s->held && PyList_Append(out, s->text) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *side_list(const Side *side)
{
    PyObject *out = PyList_New(side->count);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < side->count; i++) {
        PyObject *pair = Py_BuildValue("(LL)", (long long)side->levels[i].px, (long long)side->levels[i].size);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *TickCore_book(TickCore *self, PyObject *symbol)
{
    Py_ssize_t slot = slot_of_text(self, symbol, 0);
    if (slot == -2)
        return NULL;
    if (slot < 0 || self->slots[slot].book == NULL)
        return Py_BuildValue("([][])");
    Book *b = self->slots[slot].book;
    return Py_BuildValue("(NN)", side_list(&b->bids), side_list(&b->asks));
}

static PyObject *TickCore_invalid(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < self->used; k++) {
        Slot *s = &self->slots[self->order[k]];
        if (s->book != NULL && s->book->invalid && PyList_Append(out, s->text) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *TickCore_take_faults(TickCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->faults_pending == 0)
        return PyTuple_New(0); /* the shared empty tuple: nothing allocated per message */
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; self->faults_pending > 0 && k < self->used; k++) {
        Slot *s = &self->slots[self->order[k]];
        if (s->book == NULL || s->book->report < 0)
            continue;
        PyObject *pair = Py_BuildValue("(Os)", s->text, FAULT_NAMES[s->book->report]);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(pair);
        s->book->report = -1;
        self->faults_pending--;
    }
    PyObject *taken = PyList_AsTuple(out);
    Py_DECREF(out);
    return taken;
}

static PyObject *TickCore_get_faults(TickCore *self, void *Py_UNUSED(closure))
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (int r = 0; r < N_FAULTS; r++) {
        PyObject *n = PyLong_FromLongLong(self->faults[r]);
        if (n == NULL || PyDict_SetItemString(out, FAULT_NAMES[r], n) < 0) {
            Py_XDECREF(n);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(n);
    }
    return out;
}

static PyObject *TickCore_get_levels_trimmed(TickCore *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(self->levels_trimmed);
}

static PyObject *TickCore_get_last_symbol(TickCore *self, void *Py_UNUSED(closure))
{
    if (self->last_slot < 0)
        return PyUnicode_FromString("");
    return Py_NewRef(self->slots[self->last_slot].text);
}

static PyObject *TickCore_get_pending(TickCore *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->out_ticks);
}

static PyObject *TickCore_get_counters(TickCore *self, void *Py_UNUSED(closure))
{
    return Py_BuildValue("(LLLLLL)", self->snapshots, self->increments, self->n_entries, self->quotes_out,
                         self->trades_out, self->ticks_suppressed);
}

static PyMethodDef TickCore_methods[] = {
    {"on_raw", (PyCFunction)TickCore_on_raw, METH_VARARGS,
     "on_raw(data, ingest_ns) -> int: decode and apply a raw W or X; RAW_FALLBACK leaves it, "
     "untouched, to the Python path; RAW_Y: a MarketDataRequestReject."},
    {"apply", (PyCFunction)TickCore_apply, METH_VARARGS,
     "apply(md, ingest_ns): apply a decoded, checked W or X (MdMessage columns)."},
    {"take", (PyCFunction)TickCore_take, METH_VARARGS,
     "take(keys, values): move the pending ticks, in order, into two lists."},
    {"flush", (PyCFunction)TickCore_flush, METH_NOARGS,
     "flush() -> list[(key, record)]: the pending ticks as one TickBatch record per symbol."},
    {"top", (PyCFunction)TickCore_top, METH_O, "top(symbol) -> (bid, ask, last), scaled by 10^8."},
    {"book", (PyCFunction)TickCore_book, METH_O,
     "book(symbol) -> (bids, asks): the held levels best first as (px_e8, size_e8)."},
    {"invalid", (PyCFunction)TickCore_invalid, METH_NOARGS,
     "invalid() -> the symbols whose book is invalid (until their next snapshot)."},
    {"take_faults", (PyCFunction)TickCore_take_faults, METH_NOARGS,
     "take_faults() -> ((symbol, reason), ...): the fault that made each book invalid, once."},
    {"sequence", (PyCFunction)TickCore_sequence, METH_O, "sequence(symbol) -> the last tick seq."},
    {"symbols", (PyCFunction)TickCore_symbols, METH_NOARGS, "symbols() -> the symbols with a book."},
    {"hold_back", (PyCFunction)TickCore_hold_back, METH_NOARGS,
     "hold_back(): hold every symbol's increments back until its next snapshot."},
    {"held", (PyCFunction)TickCore_held, METH_NOARGS, "held() -> the symbols held back."},
    {"open_inbox", (PyCFunction)TickCore_open_inbox, METH_VARARGS,
     "open_inbox(capacity) -> fd: the inbox the QuickFIX thread pushes raw messages into, and "
     "the eventfd that says it did."},
    {"drain", (PyCFunction)TickCore_drain, METH_VARARGS,
     "drain(max_messages, max_ns) -> (taken, snapshots, arrivals, fallback, fallback_ns)."},
    {"settle", (PyCFunction)TickCore_settle, METH_VARARGS,
     "settle(hold) -> bool: True when the inbox holds more; see the C source."},
    {"stop_inbox", (PyCFunction)TickCore_stop_inbox, METH_NOARGS,
     "stop_inbox(): release a waiting QuickFIX thread; later messages are dropped, counted."},
    {"clear_inbox", (PyCFunction)TickCore_clear_inbox, METH_NOARGS,
     "clear_inbox() -> int: drop what the inbox holds, counted as dropped on stop."},
    {"push", (PyCFunction)TickCore_push, METH_VARARGS,
     "push(data) -> bool: push one raw message as the QuickFIX thread does (for tests)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef TickCore_getset[] = {
    {"faults", (getter)TickCore_get_faults, NULL, "{reason: count} of the book faults", NULL},
    {"levels_trimmed", (getter)TickCore_get_levels_trimmed, NULL, "levels not kept past the capacity",
     NULL},
    {"last_symbol", (getter)TickCore_get_last_symbol, NULL, "the symbol of the last W on_raw applied", NULL},
    {"pending", (getter)TickCore_get_pending, NULL, "ticks written and not yet taken or flushed", NULL},
    {"inbox", (getter)TickCore_get_inbox, NULL, "(held, waits, dropped on stop, pushed)", NULL},
    {"counters", (getter)TickCore_get_counters, NULL,
     "(snapshots, increments, entries, quotes_out, trades_out, ticks_suppressed)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TickCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "fix_session.tick_core.TickCore",
    .tp_doc = "Raw W/X in, per-symbol books, encoded Ticks out (see the module docstring).",
    .tp_basicsize = sizeof(TickCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TickCore_init,
    .tp_dealloc = (destructor)TickCore_dealloc,
    .tp_methods = TickCore_methods,
    .tp_getset = TickCore_getset,
};

static struct PyModuleDef tick_core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fix_session.tick_core",
    .m_doc = "The ingest's native core: raw FIX W/X -> books -> encoded Ticks.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit_tick_core(void)
{
    if (PyType_Ready(&TickCoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&tick_core_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "TickCore", (PyObject *)&TickCoreType) < 0 ||
        PyModule_AddIntConstant(m, "RAW_FALLBACK", RAW_FALLBACK) < 0 ||
        PyModule_AddIntConstant(m, "RAW_X", RAW_X) < 0 || PyModule_AddIntConstant(m, "RAW_W", RAW_W) < 0 ||
        PyModule_AddIntConstant(m, "RAW_Y", RAW_Y) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *api = PyCapsule_New((void *)&inbox_api, TICK_CORE_INBOX_CAPSULE, NULL);
    if (api == NULL || PyModule_AddObject(m, "_inbox_api", api) < 0) {
        Py_XDECREF(api);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
