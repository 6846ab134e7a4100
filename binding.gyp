{
  "targets": [
    {
      "target_name": "interlock",
      "sources": [
        "native/core/fault_guard.cc",
        "native/core/file_marks.cc",
        "native/core/file_turns.cc",
        "native/core/flock.cc",
        "native/core/interrupter.cc",
        "native/core/region_file.cc",
        "native/core/lock_file.cc",
        "native/core/lock_table.cc",
        "native/core/semaphore.cc",
        "native/core/shared_region.cc",
        "native/core/turn.cc",
        "native/core/wait.cc",
        "native/binding/addon.cc",
        "native/binding/addon_data.cc",
        "native/binding/async_wait.cc",
        "native/binding/errors.cc",
        "native/binding/fd_wait.cc",
        "native/binding/lock_file_object.cc",
        "native/binding/lock_table_object.cc",
        "native/binding/lock_wait.cc",
        "native/binding/semaphore_object.cc",
        "native/binding/shared_mutex_object.cc",
        "native/binding/sync_wait.cc",
        "native/binding/wait_object.cc"
      ],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc!": ["-std=gnu++17"],
      "cflags": ["-O3", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-std=c++17", "-O3", "-fvisibility=hidden", "-fno-exceptions", "-Wall", "-Wextra"],
      "ldflags": ["-pthread", "-Wl,-z,nodelete"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
