//! Query API routes.
