;; Baseline for the content benchmark: the least a canister can do to store and serve bytes.
;;   update "write": copy the whole argument into the heap (msg_arg_data_copy), grow stable
;;                   memory if needed, stable64_write it at the next free offset, reply "".
;;   query  "read":  argument = offset (u64 LE) ‖ length (u32 LE); stable64_read that range
;;                   into the heap, msg_reply_data_append it, reply.
;; Same host, same cost table as the LiVault wasm.
(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "stable64_size" (func $stable_size (result i64)))
  (import "ic0" "stable64_grow" (func $stable_grow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $stable_write (param i64 i64 i64)))
  (import "ic0" "stable64_read" (func $stable_read (param i64 i64 i64)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory (export "memory") 64)
  ;; Next free stable offset (heap globals persist between messages).
  (global $next (mut i64) (i64.const 0))
  (func $write (export "canister_update write")
    (local $n i32) (local $end i64) (local $pages i64)
    (local.set $n (call $arg_size))
    (call $arg_copy (i32.const 0) (i32.const 0) (local.get $n))
    (local.set $end (i64.add (global.get $next) (i64.extend_i32_u (local.get $n))))
    (local.set $pages (i64.shr_u (i64.add (local.get $end) (i64.const 65535)) (i64.const 16)))
    (if (i64.gt_u (local.get $pages) (call $stable_size))
      (then (drop (call $stable_grow (i64.sub (local.get $pages) (call $stable_size))))))
    (call $stable_write (global.get $next) (i64.const 0) (i64.extend_i32_u (local.get $n)))
    (global.set $next (local.get $end))
    (call $reply))
  (func $read (export "canister_query read")
    (local $off i64) (local $len i32)
    (call $arg_copy (i32.const 0) (i32.const 0) (i32.const 12))
    (local.set $off (i64.load (i32.const 0)))
    (local.set $len (i32.load (i32.const 8)))
    (call $stable_read (i64.const 16) (local.get $off) (i64.extend_i32_u (local.get $len)))
    (call $append (i32.const 16) (local.get $len))
    (call $reply)))
