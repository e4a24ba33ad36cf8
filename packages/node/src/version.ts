/** The node software's version, reported by unc_status. */
export const NODE_VERSION = '0.1.0';
