"""Every Lua script of the Redis job backend, in one place (`lua/*.lua`). Each runs atomically on one
queue's slot; each file says what its KEYS and ARGV are.

Common arguments: ARGV[1] is the queue's key tag (`{p:q:name}:`); job hashes are `tag .. 'job:' .. id`.
Times: `now` in ms for the zsets, `now_s` in seconds (as text) for the job record.
"""

from __future__ import annotations

from perfkit.redisclient.scripts import lua_script

_LUA = "perfkit.jobs.backends"
# every script but PROGRESS starts with prelude.lua's helpers; CLAIM and FINISH_OK add finish_ok_helper.lua
ENQUEUE = lua_script(_LUA, "prelude", "enqueue")
CLAIM = lua_script(_LUA, "prelude", "finish_ok_helper", "claim")
RENEW = lua_script(_LUA, "prelude", "renew")
FINISH = lua_script(_LUA, "prelude", "finish")
FINISH_OK = lua_script(_LUA, "prelude", "finish_ok_helper", "finish_ok")
RELEASE = lua_script(_LUA, "prelude", "release")
REAP = lua_script(_LUA, "prelude", "reap")
CANCEL = lua_script(_LUA, "prelude", "cancel")
RETRY = lua_script(_LUA, "prelude", "retry")
PROGRESS = lua_script(_LUA, "progress")
CLEANUP = lua_script(_LUA, "prelude", "cleanup")
