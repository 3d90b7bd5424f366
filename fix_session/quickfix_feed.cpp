/*
 * fix_session.quickfix_feed: the ingest's QuickFIX session with a C++ Application.
 *
 * Why: through the Python bindings every application message costs a call into Python
 * on the QuickFIX thread (the SWIG director, the GIL taken from the event loop, the
 * `toString()` copy into a str, the hand-off), and the event loop's wakeups for them cost
 * thread switches on the shared core; measured, that put the ingest at 0.57 of the bare
 * QuickFIX session even with no Kafka at all (README, "Why a native core"). Here the
 * QuickFIX thread serializes the message in C++ and copies it into the native core's
 * inbox (fix_session.tick_core) without the GIL; the event loop drains the inbox in
 * slices. QuickFIX itself (the session layer: logon, heartbeats, sequence numbers,
 * resends, reconnects) is the library the `quickfix` package ships: this module is
 * compiled against its headers (the package's source distribution) and resolves its
 * symbols from the package's own extension at import (fix_session.native_quickfix).
 *
 * Session events (logon, logout) go to a Python callable, with the GIL; they are rare.
 * toAdmin adds Username/Password to the Logon and counts the session-level Rejects and
 * ResendRequests sent.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <memory>
#include <string>

#include "Application.h"
#include "FileLog.h"
#include "Log.h"
#include "Message.h"
#include "MessageStore.h"
#include "SessionID.h"
#include "SessionSettings.h"
#include "SocketInitiator.h"

#include "tick_core_api.h"

namespace {

const TickCoreInboxApi *inbox_api = nullptr;

class FeedApplication : public FIX::Application {
public:
    FeedApplication(PyObject *core, PyObject *on_event, std::string username, std::string password)
        : core_(core), on_event_(on_event), username_(std::move(username)),
          password_(std::move(password))
    {
    }

    void onCreate(const FIX::SessionID &) override {}
    void onLogon(const FIX::SessionID &id) override { event("logon", id); }
    void onLogout(const FIX::SessionID &id) override { event("logout", id); }

    void toAdmin(FIX::Message &message, const FIX::SessionID &) override
    {
        const std::string &type = message.getHeader().getField(FIX::FIELD::MsgType);
        if (type == "A") {
            if (!username_.empty())
                message.setField(FIX::FIELD::Username, username_);
            if (!password_.empty())
                message.setField(FIX::FIELD::Password, password_);
        } else if (type == "3") {
            session_rejects_sent++;
        } else if (type == "2") {
            resend_requests_sent++;
        }
    }

    void toApp(FIX::Message &, const FIX::SessionID &) EXCEPT(FIX::DoNotSend) override {}

    void fromAdmin(const FIX::Message &, const FIX::SessionID &)
        EXCEPT(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override
    {
    }

    void fromApp(const FIX::Message &message, const FIX::SessionID &)
        EXCEPT(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
               FIX::UnsupportedMessageType) override
    {
        message.toString(buffer_);
        inbox_api->push(core_, buffer_.data(), buffer_.size());
    }

    std::atomic<long long> session_rejects_sent{0};
    std::atomic<long long> resend_requests_sent{0};

private:
    void event(const char *kind, const FIX::SessionID &id)
    {
        PyGILState_STATE state = PyGILState_Ensure();
        PyObject *result = PyObject_CallFunction(
            on_event_, "ssss", kind, id.getBeginString().getString().c_str(),
            id.getSenderCompID().getString().c_str(), id.getTargetCompID().getString().c_str());
        if (result == nullptr)
            PyErr_WriteUnraisable(on_event_);
        Py_XDECREF(result);
        PyGILState_Release(state);
    }

    PyObject *core_;
    PyObject *on_event_;
    std::string username_;
    std::string password_;
    std::string buffer_;
};

struct Feed {
    PyObject_HEAD
    PyObject *core;
    PyObject *on_event;
    FeedApplication *app;
    FIX::SessionSettings *settings;
    FIX::MessageStoreFactory *store;
    FIX::LogFactory *logs;
    FIX::SocketInitiator *initiator;
    int started;
};

void release(Feed *self)
{
    delete self->initiator;
    delete self->logs;
    delete self->store;
    delete self->settings;
    delete self->app;
    self->initiator = nullptr;
    self->logs = nullptr;
    self->store = nullptr;
    self->settings = nullptr;
    self->app = nullptr;
}

int Feed_init(Feed *self, PyObject *args, PyObject *kwds)
{
    static const char *kwlist[] = {"settings_path", "core", "on_event", "username", "password", "file_log", nullptr};
    const char *path, *username = "", *password = "";
    PyObject *core, *on_event;
    int file_log = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sOO|ssp", const_cast<char **>(kwlist), &path, &core,
                                     &on_event, &username, &password, &file_log))
        return -1;
    if (self->app != nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "QuickfixFeed is initialized once");
        return -1;
    }
    if (!PyObject_TypeCheck(core, static_cast<PyTypeObject *>(inbox_api->type)) || !inbox_api->ready(core)) {
        PyErr_SetString(PyExc_TypeError, "core must be a TickCore whose inbox is open");
        return -1;
    }
    if (!PyCallable_Check(on_event)) {
        PyErr_SetString(PyExc_TypeError, "on_event must be callable");
        return -1;
    }
    self->core = Py_NewRef(core);
    self->on_event = Py_NewRef(on_event);
    try {
        self->settings = new FIX::SessionSettings(path);
        self->store = new FIX::MemoryStoreFactory();
        if (file_log)
            self->logs = new FIX::FileLogFactory(*self->settings);
        else
            self->logs = new FIX::ScreenLogFactory(*self->settings);
        self->app = new FeedApplication(core, on_event, username, password);
        self->initiator = new FIX::SocketInitiator(*self->app, *self->store, *self->settings, *self->logs);
    } catch (const std::exception &exc) {
        release(self);
        PyErr_Format(PyExc_ValueError, "QuickFIX settings %s: %s", path, exc.what());
        return -1;
    }
    return 0;
}

PyObject *Feed_start(Feed *self, PyObject *)
{
    if (self->initiator == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "the feed is not initialized");
        return nullptr;
    }
    std::string error;
    Py_BEGIN_ALLOW_THREADS
    try {
        self->initiator->start();
    } catch (const std::exception &exc) {
        error = exc.what();
    }
    Py_END_ALLOW_THREADS
    if (!error.empty()) {
        PyErr_Format(PyExc_RuntimeError, "QuickFIX did not start: %s", error.c_str());
        return nullptr;
    }
    self->started = 1;
    Py_RETURN_NONE;
}

PyObject *Feed_stop(Feed *self, PyObject *args)
{
    int force = 0;
    if (!PyArg_ParseTuple(args, "|p", &force))
        return nullptr;
    if (self->initiator != nullptr && self->started) {
        // Without the GIL: a logout on the way out calls back into Python.
        Py_BEGIN_ALLOW_THREADS
        self->initiator->stop(force != 0);
        Py_END_ALLOW_THREADS
        self->started = 0;
    }
    Py_RETURN_NONE;
}

PyObject *Feed_counters(Feed *self, void *)
{
    if (self->app == nullptr)
        return Py_BuildValue("(LL)", 0LL, 0LL);
    return Py_BuildValue("(LL)", self->app->session_rejects_sent.load(), self->app->resend_requests_sent.load());
}

void Feed_dealloc(Feed *self)
{
    if (self->initiator != nullptr && self->started) {
        Py_BEGIN_ALLOW_THREADS
        self->initiator->stop(true);
        Py_END_ALLOW_THREADS
    }
    release(self);
    Py_XDECREF(self->core);
    Py_XDECREF(self->on_event);
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject *>(self));
}

PyMethodDef Feed_methods[] = {
    {"start", reinterpret_cast<PyCFunction>(Feed_start), METH_NOARGS,
     "start(): connect in the background (QuickFIX reconnects on its own)."},
    {"stop", reinterpret_cast<PyCFunction>(Feed_stop), METH_VARARGS,
     "stop(force=False): log out and stop QuickFIX's threads; blocks, without the GIL."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef Feed_getset[] = {
    {"counters", reinterpret_cast<getter>(Feed_counters), nullptr,
     "(session-level Rejects sent, ResendRequests sent)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject FeedType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyModuleDef feed_module = {PyModuleDef_HEAD_INIT};

}  // namespace

PyMODINIT_FUNC PyInit_quickfix_feed(void)
{
    inbox_api = static_cast<const TickCoreInboxApi *>(PyCapsule_Import(TICK_CORE_INBOX_CAPSULE, 0));
    if (inbox_api == nullptr)
        return nullptr;
    FeedType.tp_name = "fix_session.quickfix_feed.QuickfixFeed";
    FeedType.tp_doc = "A QuickFIX initiator whose application messages go raw into a TickCore's inbox.";
    FeedType.tp_basicsize = sizeof(Feed);
    FeedType.tp_flags = Py_TPFLAGS_DEFAULT;
    FeedType.tp_new = PyType_GenericNew;
    FeedType.tp_init = reinterpret_cast<initproc>(Feed_init);
    FeedType.tp_dealloc = reinterpret_cast<destructor>(Feed_dealloc);
    FeedType.tp_methods = Feed_methods;
    FeedType.tp_getset = Feed_getset;
    if (PyType_Ready(&FeedType) < 0)
        return nullptr;
    feed_module.m_name = "fix_session.quickfix_feed";
    feed_module.m_doc = "The ingest's QuickFIX session with a C++ Application (see the source).";
    feed_module.m_size = -1;
    PyObject *m = PyModule_Create(&feed_module);
    if (m == nullptr)
        return nullptr;
    if (PyModule_AddObjectRef(m, "QuickfixFeed", reinterpret_cast<PyObject *>(&FeedType)) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
