{
  "targets": [
    {
      "target_name": "sandcell",
      "sources": ["native/addon.cc", "native/spawn.cc", "native/validate.cc", "native/box_files.cc", "native/peer_cred.cc", "native/netns.cc", "native/netlink.cc", "native/cgroup_files.cc", "native/run_pipes.cc", "native/dev_tree.cc", "native/file_ids.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"]
    },
    {
      "target_name": "sandcell-init",
      "type": "executable",
      "sources": ["native/init/start.cc", "native/init/main.cc", "native/init/plan.cc", "native/init/common.cc",
                  "native/init/root.cc", "native/init/files.cc", "native/init/program.cc", "native/init/reaper.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                    "-ffreestanding", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics",
                    "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fno-stack-protector",
                    "-U_FORTIFY_SOURCE"],
      "cflags_cc!": ["-std=gnu++17"],
      "ldflags": ["-static", "-nostdlib"],
      "libraries": ["-lgcc"],
      "conditions": [
        ["target_arch=='arm64'", {"cflags_cc": ["-mno-outline-atomics"]}]
      ]
    }
  ]
}
