// SPDX-License-Identifier: MIT
using System;

namespace Pimoe
{
    /// <summary>
    /// A libpimoe call failed. <see cref="Status"/> is the library's status code and <see cref="Exception.Message"/>
    /// the library's own message for that failure (read in the same native call, on the same thread), e.g.
    /// "top_k (9) exceeds num_experts (8)".
    /// </summary>
    [Serializable]
    public class PimoeException : Exception
    {
        /// <summary>A failure with this status and message (the status's text when the message is empty).</summary>
        public PimoeException(Status status, string message)
            : base(string.IsNullOrEmpty(message) ? Library.StatusString(status) : message)
        {
            Status = status;
        }

        /// <summary>A failure caused by <paramref name="inner"/> (the exception of a failed expert callback).</summary>
        public PimoeException(Status status, string message, Exception inner)
            : base(string.IsNullOrEmpty(message) ? Library.StatusString(status) : message, inner)
        {
            Status = status;
        }

        /// <summary>The status code of the failed call (never <see cref="Pimoe.Status.Ok"/>).</summary>
        public Status Status { get; private set; }

        /// <summary>The library's static text for <see cref="Status"/>, e.g. "a size or value is out of range".</summary>
        public string StatusText { get { return Library.StatusString(Status); } }

        /// <summary>"Pimoe.PimoeException: status: message".</summary>
        public override string ToString()
        {
            return "Pimoe.PimoeException: " + Status + ": " + Message;
        }
    }
}
