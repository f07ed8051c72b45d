"""What a hostile user does to a sandbox, one cell each: shared by the hostile suite
(tests/sandbox/test_hostile.py, which checks what follows each) and its benchmark
(bench/hostile.py, which times it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    name: str
    code: str
    # The execution's time-out, as a client would send it.
    timeout_s: float = 60.0
    # Whether the kernel must keep its variables through the probe. False: it may lose
    # them (a new kernel), and the next result must then say so.
    keeps_state: bool = True


FORK_BOMB = Probe(
    "fork_bomb",
    # As the issue ran it: every copy forks on until the sandbox refuses.
    "import os\n"
    "for _ in range(10000):\n"
    "    try:\n"
    "        os.fork()\n"
    "    except OSError:\n"
    "        break\n"
    "print('alive')",
    keeps_state=False,  # the copies may take the kernel's memory with them
)
MEMORY_HOG = Probe(
    "memory_hog",
    "blocks = []\nwhile True:\n    blocks.append(b'x' * (32 << 20))",
    keeps_state=False,
)
FILL_DATA = Probe(
    "fill_data",
    "try:\n"
    "    with open('/mnt/data/filler', 'wb') as sink:\n"
    "        while True:\n"
    "            sink.write(b'x' * (1 << 20))\n"
    "except OSError as exc:\n"
    "    print(exc.strerror)",
)
FILL_TMP = Probe(
    "fill_tmp",
    "try:\n"
    "    with open('/tmp/filler', 'wb') as sink:\n"
    "        while True:\n"
    "            sink.write(b'x' * (1 << 20))\n"
    "except OSError as exc:\n"
    "    print(exc.strerror)",
)
OUTPUT_50MB = Probe("output_50mb", "print('x' * 50_000_000)")
STRAY_OUTPUT = Probe(
    "stray_output",
    # A thread, a forked child and a background process, all printing on after the
    # cell has ended.
    "import os, subprocess, threading, time\n"
    "def chatter():\n"
    "    while True:\n"
    "        print('stray thread', flush=True)\n"
    "        time.sleep(0.01)\n"
    "threading.Thread(target=chatter, daemon=True).start()\n"
    "server = subprocess.Popen(['sh', '-c', 'while :; do echo stray process; sleep 0.01; done'])\n"
    "if os.fork() == 0:\n"
    "    while True:\n"
    "        print('stray fork', flush=True)\n"
    "        time.sleep(0.01)\n"
    "print('started')",
)
SIGINT_IGNORED = Probe(
    "sigint_ignored",
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    timeout_s=2.0,
    keeps_state=False,
)
SIGNALS_TO_AGENT = Probe(
    "signals_to_agent",
    "import os, signal\n"
    "attempts = [(1, sig) for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT,\n"
    "            signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGSTOP,\n"
    "            signal.SIGCONT)]\n"
    "attempts += [(-os.getpgid(1), signal.SIGTERM), (-1, signal.SIGKILL)]  # -1: all but PID 1\n"
    "for target, sig in attempts:\n"
    "    try:\n"
    "        os.kill(target, sig)\n"
    "    except ProcessLookupError:\n"
    "        pass  # -1 found nobody else to signal\n"
    "    except PermissionError:\n"
    "        pass  # under gVisor the agent is root's\n"
    "print('sent')",
)
RUN_FOLDER = Probe(
    "run_folder",
    # Each sabotage may be refused (under gVisor the folder is the agent's, root's):
    # what happened to each is printed.
    "import os\n"
    "def remove_agent_socket():\n"
    "    os.remove('/run/sandbox/agent.sock')\n"
    "def remove_kernel_socket():\n"
    "    os.remove('/run/sandbox/sockets/kernel-1')\n"
    "def rewrite_connection_file():\n"
    "    open('/run/sandbox/kernel.json', 'w').write('{\"ip\": \"/etc/passwd\"')\n"
    "def fill():\n"
    "    os.mkdir('/run/sandbox/junk')\n"
    "    for i in range(100_000):\n"
    "        open(f'/run/sandbox/junk/{i}', 'w').write('x' * 1000)\n"
    "for sabotage in (remove_agent_socket, remove_kernel_socket, rewrite_connection_file, fill):\n"
    "    try:\n"
    "        sabotage()\n"
    "        print(sabotage.__name__, 'done')\n"
    "    except OSError as exc:\n"
    "        print(sabotage.__name__, exc.strerror)",
)
PROC_SYS = Probe(
    "proc_sys",
    "import json, os\n"
    "writes = {}\n"
    "for path, data in [('/proc/sysrq-trigger', 'h'), ('/proc/sys/kernel/hostname', 'x'),\n"
    "                   ('/proc/sys/vm/drop_caches', '3'), ('/proc/self/oom_score_adj', '-1000'),\n"
    "                   ('/sys/fs/cgroup/memory/memory.limit_in_bytes', '99999999999'),\n"
    "                   ('/sys/fs/cgroup/pids/pids.max', 'max'),\n"
    "                   ('/sys/fs/cgroup/memory.max', 'max'), ('/sys/fs/cgroup/pids.max', 'max'),\n"
    "                   ('/sys/kernel/mm/transparent_hugepage/enabled', 'never')]:\n"
    "    try:\n"
    "        with open(path, 'w') as sink:\n"
    "            sink.write(data)\n"
    "        writes[path] = 'written'\n"
    "    except OSError as exc:\n"
    "        writes[path] = type(exc).__name__\n"
    "print(json.dumps(writes))",
)
CPU_HOG = Probe("cpu_hog", "while True:\n    pass", timeout_s=3.0)
MANY_FILES = Probe(
    "many_files",
    "for i in range(10_000):\n    open(f'/mnt/data/f{i:05}.txt', 'w').write('x')\nprint('made')",
)

PROBES = [
    FORK_BOMB,
    MEMORY_HOG,
    FILL_DATA,
    FILL_TMP,
    OUTPUT_50MB,
    STRAY_OUTPUT,
    SIGINT_IGNORED,
    SIGNALS_TO_AGENT,
    RUN_FOLDER,
    PROC_SYS,
    CPU_HOG,
    MANY_FILES,
]
