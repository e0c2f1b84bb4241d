-- Better Auth's admin plugin marks operators with role "admin" on the
-- user record; the console checks it (MongoDB keeps the same field).
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT '';
