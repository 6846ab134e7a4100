// The counter in the SharedMutex's own shared bytes (`m.data`): the same
// memory in every process and thread, guarded by the mutex around it.
const DATA_SIZE = 8;

function openMutexStore(mutex) {
  const data = mutex.data;
  return {
    describe: `${DATA_SIZE} bytes of /dev/shm/${mutex.name} (m.data)`,
    read: () => data.readDoubleLE(0),
    write: (value) => data.writeDoubleLE(value, 0),
    close() {},
  };
}

module.exports = { DATA_SIZE, openMutexStore };
