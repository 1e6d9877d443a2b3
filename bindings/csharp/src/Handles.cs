// SPDX-License-Identifier: MIT
// SafeHandles over libpimoe's opaque pointers. The P/Invoke marshaller AddRefs a SafeHandle for the duration of each
// call that takes it and calls ReleaseHandle() only once the last call has returned, so disposing a Model while
// another thread is inside Forward() cannot free the model under it; calls made after Dispose() throw
// ObjectDisposedException before reaching native code.
using System;
using System.Runtime.InteropServices;

namespace Pimoe
{
    internal sealed class ModelHandle : SafeHandle
    {
        public ModelHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle()
        {
            pimoe.PimoeCsharpDestroyModel(handle);
            return true;
        }
    }

    internal sealed class OptionsHandle : SafeHandle
    {
        public OptionsHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle()
        {
            pimoe.PimoeCsharpDestroyOptions(handle);
            return true;
        }
    }
}
