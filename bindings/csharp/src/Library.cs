// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;

namespace Pimoe
{
    /// <summary>Process-wide facts about libpimoe: version, build, backends and devices.</summary>
    public static class Library
    {
        /// <summary>The library's version "MAJOR.MINOR.PATCH" (pimoe_version_string).</summary>
        public static string Version { get { return pimoe.PimoeVersionString(); } }

        /// <summary>major*10000 + minor*100 + patch of the loaded library.</summary>
        public static uint VersionNumber { get { return pimoe.PimoeVersionNumber(); } }

        /// <summary>The ABI major version (the N of libpimoe.so.N) of the loaded library.</summary>
        public static uint AbiVersion { get { return pimoe.PimoeAbiVersion(); } }

        /// <summary>The version of the header these bindings were generated from; differs from
        /// <see cref="Version"/> on a header/library skew.</summary>
        public static string BindingVersion { get { return pimoe.HeaderVersionString; } }

        /// <summary>One line describing the build: backends, BLAS, compiler.</summary>
        public static string BuildInfo { get { return pimoe.PimoeBuildInfo(); } }

        /// <summary>Static English text for a status code.</summary>
        public static string StatusString(Status status) { return pimoe.PimoeStatusString(status); }

        /// <summary>Backends compiled into this build, in order of preference.</summary>
        public static string[] Backends
        {
            get
            {
                int n = pimoe.PimoeBackendCount();
                var names = new List<string>(n);
                for (int i = 0; i < n; i++) names.Add(pimoe.PimoeBackendName(i));
                return names.ToArray();
            }
        }

        /// <summary>Whether a backend ("cpu", "cuda", "vulkan", "vulkan:N", "auto") can run here.
        /// Throws PimoeException (NotFound) for an unknown name.</summary>
        public static bool IsBackendUsable(string name)
        {
            int usable;
            pimoe.PimoeBackendProbe(name, out usable);
            return usable != 0;
        }

        /// <summary>As <see cref="IsBackendUsable(string)"/>; when unusable, <paramref name="reason"/> says why.</summary>
        public static bool IsBackendUsable(string name, out string reason)
        {
            bool usable = IsBackendUsable(name);
            reason = usable ? null : pimoe.PimoeCsharpBackendUnusableReason(name);
            return usable;
        }

        /// <summary>Description of the device a backend would use here, or null if unknown or unusable.</summary>
        public static string BackendDevice(string name) { return pimoe.PimoeBackendDevice(name); }
    }
}
