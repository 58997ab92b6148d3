// WebRTC is not used by the generator's peers (no WebSocket trackers, no browser peers).
export const RTCPeerConnection = undefined
export const RTCSessionDescription = undefined
export const RTCIceCandidate = undefined
export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate }
