mod aeskey;
mod rsa_private_key;

pub use aeskey::AesKey;
pub(crate) use rsa_private_key::calculate_cipher_text_size;
pub use rsa_private_key::{KeySize, PKey, PrivateKey, PublicKey};
